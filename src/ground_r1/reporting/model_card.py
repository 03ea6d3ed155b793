"""The model card of a GRPO run folder (``OUTPUT_DIR/README.md``): what was trained, from which model, on which
data, with which preset and settings, for how many steps, the held-out figures with their controls and the
model-free baselines, the collapse alarms the run raised and how often its second box refined its first.

Built from the run's own files (``run_manifest.json``, ``metrics.jsonl``, ``heldout_eval.json``,
``rollout_settings.json``, ``alarms.jsonl``), so it can be rewritten at any time (each checkpoint save, the end of
training, and ``python -m ground_r1.reporting OUTPUT_DIR``) and never disagrees with them. It replaces TRL's generic card, which
names no base model for a local folder ("a fine-tuned version of [None]").
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

CARD_NAME = "README.md"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _last_step(metrics_path: Path) -> int | None:
    last = None
    try:
        with open(metrics_path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    try:
                        last = int(json.loads(line).get("step", last))
                    except (ValueError, TypeError, json.JSONDecodeError):
                        continue
    except OSError:
        return None
    return last


def _preset(command: list[str]) -> str | None:
    for i, arg in enumerate(command):
        if arg == "--config" and i + 1 < len(command):
            return command[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}" if value == 0 or abs(value) >= 0.01 else f"{value:.2e}"
    return str(value)


def _figure(result: dict, key: str) -> str:
    """``0.487 ± 0.063`` when the standard error is recorded, else the value."""
    value, se = result.get(key), result.get(f"{key}_se")
    return _fmt(value) + (f" ± {se:.3f}" if isinstance(se, (int, float)) else "")


def render_model_card(output_dir: str | os.PathLike[str]) -> str:
    out = Path(output_dir)
    manifest = _read_json(out / "run_manifest.json") or {}
    model_args, script_args = manifest.get("model_args") or {}, manifest.get("script_args") or {}
    training = manifest.get("training_args") or {}
    base = model_args.get("model_name_or_path") or "unknown"
    data = script_args.get("data_path") or "the built-in synthetic zoom-in data (ground_r1.demo.synthetic)"
    preset = _preset(manifest.get("command") or []) or "none (flags only)"
    steps = _last_step(out / "metrics.jsonl")
    local_base = base.startswith(("/", ".", "~"))
    front = [
        "---",
        "library_name: transformers",
        "pipeline_tag: image-text-to-text",
        *([] if local_base or base == "unknown" else [f"base_model: {base}"]),
        "tags:",
        "- ground-r1",
        "- grpo",
        "- qwen2.5-vl",
        "- grounded-visual-reasoning",
        "---",
        "",
    ]
    lines = [
        f"# {out.resolve().name}: Ground-R1 GRPO policy",
        "",
        "Trained with [Ground-R1](https://arxiv.org/abs/2505.20272) GRPO: the model proposes an evidence box, "
        "the box is cropped from the full-resolution image and fed back, and the model answers; rewards are "
        "answer accuracy and format only (no box labels).",
        "",
        "## Training",
        "",
        f"- base model: `{base}`",
        f"- training data: `{data}`"
        + (f" (images under `{script_args['image_root']}`)" if script_args.get("image_root") else ""),
        f"- preset: `{preset}`",
        f"- steps: {_fmt(steps)} logged"
        + (f" of max_steps {training['max_steps']}" if training.get("max_steps", -1) > 0 else ""),
        f"- tree: {_fmt(training.get('num_generations'))} trajectories per question, "
        f"{_fmt(training.get('num_first_round_samples'))} first-round grounding samples; loss "
        f"`{training.get('loss_type', 'n/a')}`, beta {_fmt(training.get('beta'))}, learning rate "
        f"{_fmt(training.get('learning_rate'))}, seed {_fmt(training.get('seed'))}",
        f"- code: ground_r1 git commit `{manifest.get('git_commit') or 'unknown'}`, TRL "
        f"{(manifest.get('packages') or {}).get('trl', 'n/a')}, transformers "
        f"{(manifest.get('packages') or {}).get('transformers', 'n/a')}",
        "",
    ]
    settings = _read_json(out / "rollout_settings.json")
    if settings:
        s = settings.get("settings", {})
        lines += [
            "## How it sees images (reused by evaluation)",
            "",
            f"`rollout_settings.json`: images at {s.get('min_pixels')}-{s.get('max_pixels')} pixels, up to "
            f"{s.get('max_turns')} assistant turns of {s.get('max_new_tokens_per_turn')} new tokens, total "
            f"{s.get('max_completion_length')} tokens, boxes in {settings.get('coordinates')} (absolute pixels "
            "of the model's input image). `python -m ground_r1.cli.evaluate --model_path THIS_FOLDER ...` "
            "uses these unless a flag overrides them.",
            "",
        ]
    heldout = _read_json(out / "heldout_eval.json")
    lines += ["## Held-out evaluation", ""]
    if heldout and isinstance(heldout.get("results"), dict):
        r = heldout["results"]
        lines += [
            f"Greedy, {heldout.get('questions')} held-out questions (`heldout_eval.json`, fields described there):",
            "",
            "| condition | accuracy | GIoU score |",
            "|---|---:|---:|",
        ]
        names = {
            "grounded": "grounded (the method)",
            "no_crop": "no crop (lower bound)",
            "gt_crop": "ground-truth crop (upper bound)",
            "majority_answer": "majority answer (accuracy only)",
            "whole_image_box": "whole-image box (GIoU only)",
            "centre_box": "centred box (GIoU only)",
            "random_box": "random box (GIoU only)",
        }
        base_eval = heldout.get("base")
        if isinstance(base_eval, dict):
            lines.append(
                f"| base model before RL, grounded | {_figure(base_eval, 'accuracy')} | "
                f"{_figure(base_eval, 'giou_score')} |"
            )
        for cond, label in names.items():
            if cond in r:
                accuracy = _figure(r[cond], "accuracy") if "accuracy" in r[cond] else "-"
                giou = _figure(r[cond], "giou_score") if "giou_score" in r[cond] else "-"
                lines.append(f"| {label} | {accuracy} | {giou} |")
    else:
        lines.append("Not evaluated yet (`heldout_eval_questions: 0`, or training has not finished).")
    lines += ["", "## Learning signal", "", alarm_line(out, steps), "", refinement_line(out)]
    lines += [
        "",
        "Curves: `curves.png`; sampled trajectories: `trajectories.html`; every logged metric: "
        "`metrics.jsonl` (docs/metrics.md); the full configuration: `run_manifest.json`.",
        "",
    ]
    return "\n".join(front + lines)


def alarm_line(out: Path, steps: int | None) -> str:
    """The collapse alarms the run raised (trainer/alarms.py; its alarms.jsonl), or that it raised none."""
    from ground_r1.trainer.alarms import read_events, report_line

    return report_line(read_events(out), steps)


REFINE_WINDOW = 20  # training steps the refinement line averages over (the run's last ones)


def refinement_line(output_dir: str | os.PathLike[str]) -> str:
    """Iterative refinement (rewards/giou.py `refinement_metrics`): how often the policy boxed twice and how the
    second box's GIoU compared with the first, over the run's last training steps and, once written, on the
    held-out questions (heldout_eval.json, greedy)."""
    import statistics

    from ground_r1.reporting.curves import read_metrics

    out = Path(output_dir)
    parts = []
    steps = (
        list(read_metrics(out / "metrics.jsonl").values())[-REFINE_WINDOW:] if (out / "metrics.jsonl").is_file() else []
    )

    def mean(key: str) -> float | None:
        values = [r[key] for r in steps if isinstance(r.get(key), (int, float))]
        return statistics.fmean(values) if values else None

    twice, better, gain = mean("giou/refine_twice_frac"), mean("giou/refine_improved_frac"), mean("giou/refine_gain")
    if twice is not None:
        parts.append(
            f"training (last {len(steps)} steps, sampled): {twice:.1%} of trajectories box twice"
            + (
                f"; the second box scores above the first in {better:.1%} of them, mean GIoU-score change {gain:+.3f}"
                if better is not None
                else ""
            )
        )
    heldout = _read_json(out / "heldout_eval.json") or {}
    g = (heldout.get("results") or {}).get("grounded") or {}
    if g.get("refine_twice_frac") is not None:
        parts.append(
            f"held-out (greedy): {g['refine_twice_frac']:.1%} box twice"
            + (
                f", second box better in {g['refine_improved_frac']:.1%}, mean change {g['refine_gain']:+.3f}"
                if g.get("refine_improved_frac") is not None
                else ""
            )
        )
    return "Iterative refinement: " + ("; ".join(parts) if parts else "not measured (no grounding turn)") + "."


def write_model_card(output_dir: str | os.PathLike[str]) -> Path:
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / CARD_NAME
    tmp = path.with_name(f"{CARD_NAME}.tmp{os.getpid()}")
    tmp.write_text(render_model_card(out), encoding="utf-8")
    os.replace(tmp, path)
    return path
