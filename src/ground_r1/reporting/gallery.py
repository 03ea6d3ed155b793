"""`trajectories.html`: the logged trajectories (ground_r1.trainer.trajectory_log) as a self-contained page.

Per logged step, one question and its N trajectories: the original image with every trajectory's boxes drawn
(the evidence box in white, dashed outline; it was never a training signal), then per trajectory each crop fed
back, each turn's text and the rewards. The page says how many of the logged steps it shows, and labels the two
frames: a box in a turn's text is in the model's input frame, the drawn boxes and crop windows in original pixels. Images are embedded as base64 PNG so the file can be mailed or opened
anywhere. A step logged twice (a resumed run) keeps its last lines.
"""

from __future__ import annotations

import base64
import html
import io
from collections import OrderedDict
from pathlib import Path

from ground_r1.trainer.trajectory_log import read_entries

TRAJECTORY_COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45")


def _png(image, max_side: int) -> str:
    image = image.copy()
    image.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _resolve(image: str, image_root: str | Path | None, base: Path) -> Path:
    path = Path(image)
    if path.is_absolute():
        return path
    return (Path(image_root) if image_root else base) / path


def _annotated(original, groups: list[dict]):
    from PIL import ImageDraw

    canvas = original.convert("RGB").copy()
    draw = ImageDraw.Draw(canvas)
    for gt in groups[0].get("bboxs") or []:
        x1, y1, x2, y2 = gt
        for i in range(int(x1), int(x2), 8):  # dashed white: the evidence box
            draw.line([(i, y1), (min(i + 4, x2), y1)], fill="white", width=2)
            draw.line([(i, y2), (min(i + 4, x2), y2)], fill="white", width=2)
        for j in range(int(y1), int(y2), 8):
            draw.line([(x1, j), (x1, min(j + 4, y2))], fill="white", width=2)
            draw.line([(x2, j), (x2, min(j + 4, y2))], fill="white", width=2)
    for k, entry in enumerate(groups):
        colour = TRAJECTORY_COLOURS[k % len(TRAJECTORY_COLOURS)]
        for turn in entry["turns"]:
            if turn.get("box"):
                draw.rectangle(turn["box"], outline=colour, width=2)
    return canvas


def render_gallery(
    trajectories_path: str | Path, out_path: str | Path, image_root: str | Path | None = None, max_steps_shown: int = 12
) -> Path:
    """Write the HTML page; an unreadable image is reported in the page, not raised."""
    from ground_r1.data.images import ImageLoadError, load_image

    entries = read_entries(trajectories_path)
    by_step: "OrderedDict[int, list[dict]]" = OrderedDict()
    for entry in entries:
        group = by_step.setdefault(int(entry["step"]), [])
        if group and group[0].get("key") != entry.get("key"):
            group.clear()  # the step was logged again after a resume: keep the last run's lines
        group.append(entry)
    steps = sorted(by_step)
    logged = len(steps)
    if len(steps) > max_steps_shown:  # first, last and evenly spaced in between
        idx = sorted({round(i * (len(steps) - 1) / (max_steps_shown - 1)) for i in range(max_steps_shown)})
        steps = [steps[i] for i in idx]
    shown = (
        f"Shows {len(steps)} of the {logged} logged steps ({', '.join(str(s) for s in steps)}): the first, the "
        f"last and evenly spaced ones between; trajectories.jsonl holds all {logged}."
        if len(steps) < logged
        else f"Shows all {logged} logged step(s)."
    )

    base = Path(trajectories_path).parent
    parts = [
        "<!doctype html><meta charset='utf-8'><title>Ground-R1 trajectories</title>",
        "<style>body{font-family:sans-serif;margin:20px} .traj{display:inline-block;vertical-align:top;"
        "width:300px;margin:6px;padding:6px;border:1px solid #ccc;font-size:12px} pre{white-space:pre-wrap;"
        "margin:2px 0} h2{margin-top:30px}</style>",
        "<h1>Ground-R1 trajectories</h1><p>Per logged step: one question and its trajectories. "
        + shown
        + "</p><p><b>Two frames.</b> A box written in a turn's text is in the <i>model's box frame</i>: the"
        " resized view it was shown (its size is given per question), or a 0-1000 grid for a relative-"
        "coordinate family (Qwen2-VL, Qwen3-VL, Qwen3.5); the picture, the coloured boxes drawn on"
        " it and each crop window are in <i>original pixels</i> (the box converted, as the rollout does before"
        " cropping). Coloured boxes: each trajectory's grounding boxes; dashed white: the evidence box (GIoU"
        " metric only, never a reward).</p>",
    ]
    for step in steps:
        group = by_step[step]
        first = group[0]
        frames = ""
        if first.get("input_size") and first.get("original_size"):
            (iw, ih), (ow, oh) = first["input_size"], first["original_size"]
            grid = first.get("coordinates") == "relative_1000"
            frames = (
                f" &nbsp; boxes on the 0-1000 grid (model input {iw}x{ih} px), original {ow}x{oh} px"
                if grid
                else f" &nbsp; model input frame {iw}x{ih} px, original {ow}x{oh} px"
            )
        parts.append(
            f"<h2>step {step}</h2><p><b>Q:</b> {html.escape(str(first.get('problem')))} &nbsp; "
            f"<b>answer:</b> {html.escape(str(first.get('solution')))} &nbsp; key {html.escape(str(first.get('key')))}"
            f"{frames}</p>"
        )
        try:
            original = load_image(_resolve(str(first["image"]), image_root, base))
        except (ImageLoadError, KeyError) as exc:
            parts.append(f"<p>image unavailable: {html.escape(str(exc))}</p>")
            original = None
        if original is not None:
            parts.append(f"<img src='{_png(_annotated(original, group), 448)}'>")
        parts.append("<div>")
        for k, entry in enumerate(group):
            colour = TRAJECTORY_COLOURS[k % len(TRAJECTORY_COLOURS)]
            rewards = ", ".join(
                f"{n.replace('_reward', '')}={v:.2f}" if v is not None else f"{n}=n/a"
                for n, v in entry["rewards"].items()
            )
            parts.append(
                f"<div class='traj' style='border-color:{colour}'><b style='color:{colour}'>trajectory {k}"
                f"</b> (branch {entry['branch']}, {html.escape(str(entry['finish_reason']))})<br>{rewards}"
            )
            for t, turn in enumerate(entry["turns"]):
                parts.append(f"<pre>turn {t + 1} (boxes in the input frame): {html.escape(turn['text'])}</pre>")
                if turn.get("box"):
                    parts.append(f"<div>box in original pixels: {[round(v) for v in turn['box']]}</div>")
                if turn.get("crop") and original is not None:
                    label = (
                        "fallback: full image"
                        if turn.get("crop_is_fallback")
                        else f"crop window (original pixels) {turn['crop']}"
                    )
                    parts.append(f"<div>{label}<br><img src='{_png(original.crop(tuple(turn['crop'])), 112)}'></div>")
            parts.append("</div>")
        parts.append("</div>")
    out_path = Path(out_path)
    out_path.write_text("\n".join(parts), encoding="utf-8")
    return out_path
