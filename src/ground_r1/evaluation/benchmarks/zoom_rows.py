"""Summary-table rows the zoom-in benchmarks share (each row made by ``BenchmarkSpec.summary_row``): the accuracy
row with its per-category notes, and the box-quality rows (one per round) where a benchmark has target boxes."""

from __future__ import annotations

from typing import Any

__all__ = ["accuracy_rows", "box_rows"]


def accuracy_rows(spec: Any, metrics: dict[str, Any], scored: Any, skipped: int, rule: str) -> list[Any]:
    """The accuracy row, then one per category (labelled in the metric), all by ``rule``."""
    per = metrics.get("per_category") or {}
    notes = ", ".join(f"{c} {v['accuracy']:.1f} (n={v['n']})" for c, v in per.items())
    return [spec.summary_row(scored, skipped, "accuracy", metrics["accuracy"], rule=rule, notes=notes)]


def box_rows(spec: Any, metrics: dict[str, Any], scored: Any, skipped: int, frame_note: str) -> list[Any]:
    """One row per round: IoU against the best-matching target (the score), the rest in the notes."""
    rows = []
    for r in metrics.get("box_quality") or []:

        def fmt(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.1f}"

        notes = (
            f"{r['boxes']}/{r['items']} items gave a box (no-box rate {r['no_box_rate']:.1f}%); IoU first "
            f"target {fmt(r['iou_first'])}; GIoU score best {fmt(r['giou_best'])}, first target "
            f"{fmt(r['giou_first'])}; {frame_note}"
        )
        rows.append(
            spec.summary_row(
                scored,
                skipped,
                f"box IoU, round {r['round']} (best target)",
                r["iou_best"],
                rule="ours: box quality (no reference; issue 18)",
                notes=notes,
                items=r["items"],
                error_bar=False,
            )
        )
        rows[-1].unparsed = 0  # a box row reads boxes, not answers
    return rows
