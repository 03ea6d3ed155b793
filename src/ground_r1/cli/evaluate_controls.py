"""Held-out greedy evaluation with controls: grounded, no-crop lower bound, ground-truth-crop upper bound,
random-box GIoU (`ground_r1.evaluation.controls`).

    python -m ground_r1.cli.evaluate_controls --model_path out/demo --output out/demo/heldout_eval.json
    python -m ground_r1.cli.evaluate_controls --model_path src/ground_r1/assets/tiny-instruct   # before RL

Rollout settings (turns, per-turn tokens, pixels, crop and box rules, the letter rule), so the evaluation sees images
and budgets exactly as training did: a GRPO preset given with `--config`; else the checkpoint's own
`rollout_settings.json` (every GRPO checkpoint carries one); else the CPU demo's configs/grpo/tiny_cpu.yaml (the
shipped base was built for it).
Data: any VisCoT records file whose datasets have a rule-based accuracy; default the built-in synthetic
held-out split.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

from ground_r1 import paths
from ground_r1.data.images import add_max_image_pixels_argument
from ground_r1.rollout_settings import ROLLOUT_KEYS, preset_settings, read_settings  # noqa: F401 (ROLLOUT_KEYS: the one list)

DEMO_PRESET = paths.PACKAGE_DIR.parent.parent / "configs" / "grpo" / "tiny_cpu.yaml"


def build_parser() -> argparse.ArgumentParser:
    from ground_r1.evaluation.controls import CONDITIONS

    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    p.add_argument("--model_path", default=None, help="checkpoint (default: the shipped tiny instruct base)")
    p.add_argument(
        "--config",
        default=None,
        help="GRPO preset whose rollout settings are used (default: the checkpoint's rollout_settings.json, "
        "else configs/grpo/tiny_cpu.yaml)",
    )
    p.add_argument("--data_path", default=None, help="records JSONL (default: the synthetic held-out split)")
    p.add_argument("--image_root", default=None, help="folder relative image paths resolve against")
    p.add_argument("--max_questions", type=int, default=100)
    p.add_argument(
        "--conditions", default=",".join(CONDITIONS), help="comma-separated subset of " + ",".join(CONDITIONS)
    )
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--repetition_penalty", type=float, default=1.05, help="greedy decoding penalty (SPEC §2)")
    p.add_argument("--seed", type=int, default=0, help="random-box baseline seed")
    p.add_argument("--output", default=None, help="write the metrics JSON here")
    add_max_image_pixels_argument(p)
    return p


def rollout_settings(config_path: str) -> dict:
    """The rollout settings a GRPO preset sets (``ground_r1.rollout_settings.preset_settings``)."""
    return preset_settings(config_path)


def choose_settings(config_path: str | None, model_path: str) -> tuple[dict, str]:
    """(settings, where they came from): ``--config``, else the checkpoint's file, else the demo preset."""
    if config_path:
        return rollout_settings(config_path), f"preset {config_path}"
    checkpoint = read_settings(model_path)
    if checkpoint is not None:
        return checkpoint, f"the checkpoint's rollout_settings.json ({model_path})"
    return rollout_settings(str(DEMO_PRESET)), f"preset {DEMO_PRESET} (the checkpoint has no rollout_settings.json)"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(message)s", datefmt="%H:%M:%S")
    import torch

    from ground_r1.cli.train_grpo import default_model_path
    from ground_r1.data.images import load_image, set_max_image_pixels
    from ground_r1.data.records import load_viscot_records
    from ground_r1.demo.synthetic import ensure_default_dataset
    from ground_r1.evaluation.controls import CONDITION_MEANINGS, FIELD_MEANINGS, evaluate_controls, json_safe
    from ground_r1.models.loading import check_model_path, load_model, load_processor
    from ground_r1.rewards.registry import build_registry
    from ground_r1.rollout.runner import RolloutConfig
    from ground_r1.rollout.sampling import EVAL_GREEDY_SAMPLING

    model_path = args.model_path or default_model_path()
    check_model_path(model_path)  # a missing local folder is named before anything loads (issue 17)
    set_max_image_pixels(args.max_image_pixels)
    from ground_r1.rollout_settings import checkpoint_coordinates

    settings, source = choose_settings(args.config, model_path)
    logging.getLogger("ground_r1.evaluate_controls").info("rollout settings from %s: %s", source, settings)
    min_px, max_px = settings.get("min_pixels", 3136), settings.get("max_pixels", 401408)
    data_path, image_root = args.data_path, args.image_root
    if data_path is None:
        folder = ensure_default_dataset()
        data_path, image_root = str(folder / "eval.jsonl"), str(folder)
    registry = build_registry(letter_rule=settings.get("letter_rule", "spec"))
    loaded = load_viscot_records(
        data_path,
        image_root=image_root,
        min_pixels=min_px,
        max_pixels=max_px,
        known_datasets=[d for d in registry.known_datasets() if registry.has_rule(d)],
        limit=args.max_questions,
    )
    records = loaded.records
    images = [load_image(r["image"]) for r in records]
    processor = load_processor(model_path, min_pixels=min_px, max_pixels=max_px)
    model = load_model(model_path, dtype=torch.float32 if not torch.cuda.is_available() else "auto")
    if torch.cuda.is_available():
        model = model.cuda()
    model.eval()
    config = RolloutConfig(
        max_turns=settings.get("max_turns", 5),
        max_completion_length=settings.get("max_completion_length"),
        min_crop_size=settings.get("min_crop_size", 28),
        max_aspect_ratio=settings.get("max_aspect_ratio", 200.0),
        crop_fallback=settings.get("crop_fallback", "full_image"),
        box_parse=settings.get("box_parse", "tag_first"),
    )
    sampling = replace(
        EVAL_GREEDY_SAMPLING,
        repetition_penalty=args.repetition_penalty,
        max_new_tokens=settings.get("max_new_tokens_per_turn", EVAL_GREEDY_SAMPLING.max_new_tokens),
    )
    with torch.no_grad():
        results = evaluate_controls(
            model,
            processor,
            records,
            images,
            registry,
            config,
            conditions=[c for c in args.conditions.split(",") if c],
            sampling=sampling,
            batch_size=args.batch_size,
            seed=args.seed,
            coordinates=checkpoint_coordinates(model_path),
        )
    report = {
        "model_path": str(model_path),
        "data_path": str(data_path),
        "rollout": settings,
        "rollout_source": source,
        "questions": len(records),
        "results": results,
        "conditions": CONDITION_MEANINGS,
        "fields": FIELD_MEANINGS,
    }
    text = json.dumps(json_safe(report), indent=2)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
