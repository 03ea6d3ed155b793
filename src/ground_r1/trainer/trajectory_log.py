"""`trajectories.jsonl`: the sampled trajectories of one question per logged step, for the gallery (issue 4).

One line per trajectory: the step, the question (key, image path, text, answer, evidence boxes), the two frames
(``input_size``: the model's resized view, in which the boxes of the turn texts are written; ``original_size``),
and per turn its text, the parsed box (original pixels), the crop window fed back (original pixels) and whether it
was the fallback, then the trajectory's rewards and advantage. `ground_r1.reporting.gallery` renders it; nothing here holds pixels.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from ground_r1.rollout.trajectory import Trajectory


def trajectory_entries(
    step: int,
    question: int,
    record: dict[str, Any],
    trajectories: Sequence[Trajectory],
    rewards_per_func: Sequence[Sequence[float]],
    reward_names: Sequence[str],
    advantages: Sequence[float],
) -> list[dict[str, Any]]:
    """The log lines of question `question`'s trajectories (indices aligned with the reward rows)."""
    out = []
    for row, t in enumerate(trajectories):
        if t.question_index != question:
            continue
        out.append(
            {
                "step": step,
                "key": record.get("key"),
                "image": record.get("image"),
                "problem": record.get("problem"),
                "solution": record.get("solution"),
                "bboxs": record.get("bboxs") or [],
                "branch": t.branch,
                "finish_reason": t.finish_reason,
                "input_size": list(t.input_size),  # the model's view (the boxes' frame under "input_pixels")
                "coordinates": t.coordinates,  # the boxes' frame: input pixels, or the 0-1000 grid ("relative_1000")
                "original_size": list(t.original_size),  # crops and "box" below are in this frame
                "turns": [
                    {
                        "text": turn.text,
                        "box": list(turn.box_original) if turn.box_original is not None else None,
                        "crop": list(turn.crop_window) if turn.crop_window is not None else None,
                        "crop_is_fallback": turn.crop_is_fallback,
                        "hit_token_limit": turn.hit_token_limit,
                    }
                    for turn in t.turns
                ],
                "rewards": {name: _finite(rewards_per_func[row][i]) for i, name in enumerate(reward_names)},
                "advantage": _finite(advantages[row]),
            }
        )
    return out


def _finite(value: float) -> float | None:
    value = float(value)
    return value if value == value and abs(value) != float("inf") else None


def append_entries(path: str | Path, entries: Sequence[dict[str, Any]]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        for entry in entries:
            fh.write(json.dumps(entry) + "\n")


def read_entries(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
