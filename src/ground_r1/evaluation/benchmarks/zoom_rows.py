"""Summary-table rows of the zoom-in benchmarks (issue 18): each spec's numbers, rule and error bar, then its
box-quality rows (one per round) where it has target boxes."""

from __future__ import annotations

from typing import Any

__all__ = ["accuracy_rows", "box_rows", "make_row"]


def make_row(spec: Any, scored: Any, skipped: int, metric: str, score: Any, rule: str, *, notes: str = "",
             which: str = "headline", items: int | None = None, variant: bool = False, se: bool = True) -> Any:
    """One :class:`ground_r1.evaluation.general.SummaryRow` of ``spec`` (``which``: the ``spec.estimate`` metric)."""
    from ground_r1.evaluation.general import SummaryRow

    records = scored.records
    value = float(score) if isinstance(score, (int, float)) else None
    estimate = spec.estimate(records, which) if se else None
    unparsed = sum(1 for r in records if r.get("parsed") is None)
    return SummaryRow(spec.name, metric, value, len(records) if items is None else items, unparsed,
                      scored.errors + scored.missing, notes, rule, variant, skipped,
                      estimate.se if estimate is not None and value is not None else None,
                      estimate.describe() if estimate is not None else "")


def accuracy_rows(spec: Any, metrics: dict[str, Any], scored: Any, skipped: int, rule: str) -> list[Any]:
    """The accuracy row, then one per category (labelled in the metric), all by ``rule``."""
    per = metrics.get("per_category") or {}
    notes = ", ".join(f"{c} {v['accuracy']:.1f} (n={v['n']})" for c, v in per.items())
    return [make_row(spec, scored, skipped, "accuracy", metrics["accuracy"], rule, notes=notes)]


def box_rows(spec: Any, metrics: dict[str, Any], scored: Any, skipped: int, frame_note: str) -> list[Any]:
    """One row per round: IoU against the best-matching target (the score), the rest in the notes."""
    rows = []
    for r in metrics.get("box_quality") or []:
        def fmt(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.1f}"

        notes = (f"{r['boxes']}/{r['items']} items gave a box (no-box rate {r['no_box_rate']:.1f}%); IoU first "
                 f"target {fmt(r['iou_first'])}; GIoU score best {fmt(r['giou_best'])}, first target "
                 f"{fmt(r['giou_first'])}; {frame_note}")
        rows.append(make_row(spec, scored, skipped, f"box IoU, round {r['round']} (best target)", r["iou_best"],
                             "ours: box quality (no reference; issue 18)", notes=notes, items=r["items"],
                             se=False))
        rows[-1].unparsed = 0  # a box row reads boxes, not answers
    return rows
