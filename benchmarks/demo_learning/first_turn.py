"""Where does a policy look in its first turn on the zoom question, and does GRPO's first round see a choice?
(docs/demo.md, session 4)

    .venv/bin/python benchmarks/demo_learning/first_turn.py [MODEL_DIR] [--questions 80] [--samples 8] [--temperature 1.0]

Held-out zoom scenes, rendered as the rollout renders them. Greedy: does the think name the asked card, and does
the box (input frame, scaled to the scene) hold the named card (IoU > 0.5), another card, no card, or is there no
well-formed box. Sampled (``--samples`` first turns per question at ``--temperature``, top_k 50, as GRPO's first
round samples): the share of turns that box, of questions whose samples mix boxing and answering (the only ones
where GRPO compares looking with answering), and of boxes that are well formed.
"""

from __future__ import annotations

import argparse
import json
import re

import numpy as np
import torch

from ground_r1.boxes import input_to_original, iou, parse_box
from ground_r1.demo.synthetic import SyntheticConfig, generate_scene, record_rng, zoom_question
from ground_r1.models.loading import load_model, load_processor
from ground_r1.paths import tiny_instruct_dir
from ground_r1.prompt import grounding_text
from turn_decision import generate

WELL_FORMED_BOX = re.compile(r"<box>\[\d+,\d+,\d+,\d+\]</box>")


def box_target(text: str, scene, ref, view: tuple[int, int]) -> str:
    parsed = parse_box(text) if "<box>" in text else None
    if parsed is None:
        return "no_box"
    box = input_to_original(parsed.box, view, (scene.width, scene.height))  # as the rollout maps a box to its crop
    best = max(scene.referents, key=lambda r: iou(box, r.box))
    if iou(box, best.box) <= 0.5:
        return "no_card"
    return "named_card" if best is ref else "other_card"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("model", nargs="?", default=str(tiny_instruct_dir()))
    parser.add_argument("--questions", type=int, default=80)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--temperature", type=float, default=1.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    processor = load_processor(args.model, min_pixels=12544, max_pixels=12544)
    model = load_model(args.model, dtype=torch.float32).eval()
    chats, images, refs = [], [], []
    for i in range(args.questions):
        image, scene = generate_scene(record_rng(78, "first-turn", i), SyntheticConfig())
        ref = scene.referents[i % len(scene.referents)]
        text = grounding_text(zoom_question(ref.kind), 112, 112)
        chats.append([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}])
        images.append(image)
        refs.append((scene, ref))
    greedy = generate(model, processor, chats, images)
    targets = [box_target(t, scene, ref, (112, 112)) for t, (scene, ref) in zip(greedy, refs)]
    sampled = generate(
        model,
        processor,
        chats,
        images,
        max_new_tokens=30,
        do_sample=True,
        temperature=args.temperature,
        top_k=50,
        top_p=1.0,
        num_return_sequences=args.samples,
    )
    boxed = np.array(["<box>" in t for t in sampled]).reshape(args.questions, args.samples).mean(1)
    boxes = [t for t in sampled if "<box>" in t]
    print(
        json.dumps(
            {
                "model": args.model,
                "questions": args.questions,
                "greedy": {
                    "think_names_the_asked_card": sum(f"the {ref.kind} card" in t for t, (_, ref) in zip(greedy, refs)),
                    **{k: targets.count(k) for k in ("named_card", "other_card", "no_card", "no_box")},
                },
                "sampled": {
                    "samples": args.samples,
                    "temperature": args.temperature,
                    "box_share": float(boxed.mean()),
                    "questions_mixed": float(((boxed > 0) & (boxed < 1)).mean()),
                    "questions_always_box": float((boxed == 1).mean()),
                    "questions_never_box": float((boxed == 0).mean()),
                    "well_formed_boxes": float(np.mean([bool(WELL_FORMED_BOX.search(t)) for t in boxes]))
                    if boxes
                    else None,
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
