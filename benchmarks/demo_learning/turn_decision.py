"""Does a base decide box-or-answer from the image or from the question's words? (docs/demo.md, session 3)

    .venv/bin/python benchmarks/demo_learning/turn_decision.py [MODEL_DIR] [--questions 40]

Held-out zoom scenes; each conversation is rendered as the rollout renders it ("Picture k:", the Ground-R1
instruction repeated in the crop turn). Two questions: the zoom question ("What colour is the dot inside the
{kind} card?") and the generic "What colour is the dot?". For each: turn 1 on the full scene (boxed / answered),
and turn 2 after the model's own format of a first turn holding the *evidence* box and the right crop (answered,
correct). A base that decides from the image answers in turn 2 and boxes in turn 1 whatever the question.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from ground_r1.boxes import original_to_input
from ground_r1.demo.synthetic import SyntheticConfig, generate_scene, record_rng, zoom_question
from ground_r1.demo.instruct_recipe import grounding_answer
from ground_r1.models.loading import load_model, load_processor
from ground_r1.paths import tiny_instruct_dir
from ground_r1.prompt import grounding_text


def generate(model, processor, chats, images, max_new_tokens=40, **sampling):
    """Each chat's next turn, rendered as the rollout renders it; greedy unless ``sampling`` says otherwise
    (``do_sample=True, temperature=..., num_return_sequences=k``: k turns per chat, chat-major)."""
    texts = [
        processor.apply_chat_template(c, tokenize=False, add_generation_prompt=True, add_vision_id=True) for c in chats
    ]
    processor.tokenizer.padding_side = "left"
    enc = processor(text=texts, images=images, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, **{"do_sample": False, **sampling})
    return processor.tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("model", nargs="?", default=str(tiny_instruct_dir()))
    parser.add_argument("--questions", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(1)
    processor = load_processor(args.model, min_pixels=12544, max_pixels=12544)
    model = load_model(args.model, dtype=torch.float32).eval()
    results = {}
    for mode in ("zoom", "generic"):
        first, second, scenes, crops, answers = [], [], [], [], []
        for i in range(args.questions):
            image, scene = generate_scene(record_rng(77, "turn-decision", i), SyntheticConfig())
            ref = scene.referents[i % len(scene.referents)]
            question = zoom_question(ref.kind) if mode == "zoom" else "What colour is the dot?"
            w, h = 112, 112
            box = original_to_input(ref.box, (scene.width, scene.height), (w, h))
            user = {
                "role": "user",
                "content": [{"type": "image"}, {"type": "text", "text": grounding_text(question, w, h)}],
            }
            first.append([user])
            second.append(
                [
                    user,
                    {"role": "assistant", "content": [{"type": "text", "text": grounding_answer(ref.kind, box)}]},
                    user,
                ]
            )
            scenes.append(image), crops.append(image.crop(ref.box)), answers.append(ref.detail)
        turn1 = generate(model, processor, first, scenes)
        turn2 = generate(model, processor, second, [im for pair in zip(scenes, crops) for im in pair])
        results[mode] = {
            "turn1_boxed": float(np.mean(["<box>" in t for t in turn1])),
            "turn1_answered": float(np.mean(["<answer>" in t for t in turn1])),
            "turn2_answered": float(np.mean(["<answer>" in t for t in turn2])),
            "turn2_correct": float(np.mean([f"<answer>{a}</answer>" in t for t, a in zip(turn2, answers)])),
        }
    print(json.dumps({"model": args.model, "questions": args.questions, **results}, indent=2))


if __name__ == "__main__":
    main()
