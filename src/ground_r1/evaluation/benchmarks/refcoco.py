"""RefCOCO / RefCOCO+ / RefCOCOg grounding (SPEC §7) as a spec of the one registry.

Reading, the per-expression IoU and the Acc@0.5 protocols are :mod:`ground_r1.evaluation.refcoco`'s; this spec
wires them into the pipeline: one item per referring expression (``--max_items`` counts objects per split), asked
with Qwen's grounding prompt (the ``refcoco`` protocol, its only one), scored into ``refcoco_scores.jsonl``, its
table per split (standard, any-expression and the release's rule), in a summary across benchmarks the standard
Acc@0.5 of each split. The demo: 4 synthetic objects x 2 expressions written into ``OUTPUT_DIR/builtin_refcoco``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ground_r1.evaluation.benchmarks.grounding import GroundingSpec
from ground_r1.evaluation.summary import SummaryRow

if TYPE_CHECKING:
    from ground_r1.evaluation.benchmark_run import BenchmarkData, ReadOptions, RunOptions

__all__ = ["RefCOCOSpec"]

DEMO_FOLDER, DEMO_FILE = "builtin_refcoco", "refcoco_synthetic.jsonl"  # write_synthetic_refcoco's file


@dataclass(frozen=True)
class RefCOCOSpec(GroundingSpec):
    """The release's RefCOCO file (``RefCOCO_eval_subset_1000.jsonl``, one object per line): items, scores, table."""

    rule: str = "Acc@0.5, float IoU of the unclamped box (lmms-eval 0.7.3 refcoco_bbox_rec), per expression"

    demo_max_items: ClassVar[int] = 4  # objects of the synthetic split

    def supported_protocols(self) -> tuple[str, ...]:
        return ("refcoco",)

    # ------------------------------------------------------------------ data

    def demo_data(self, output_dir: str | Path, write: bool = True) -> tuple[Path, Path]:
        from ground_r1.evaluation.refcoco import write_synthetic_refcoco

        folder = Path(output_dir) / DEMO_FOLDER
        if write:
            write_synthetic_refcoco(folder, num_objects=self.demo_max_items)
        return folder / DEMO_FILE, folder.resolve()

    def read_run(self, file: Path, image_root: Path, options: "ReadOptions") -> "BenchmarkData":
        from ground_r1.evaluation.benchmark_run import BenchmarkData
        from ground_r1.evaluation.refcoco import read_refcoco_items

        read = read_refcoco_items(
            file,
            image_root=image_root,
            path_prefix=options.image_path_prefix,
            max_objects_per_split=self.item_limit(options),
            skip_bad_records=options.skip_bad_records,
            check_images=options.check_images,
        )
        return BenchmarkData(
            self,
            Path(file),
            Path(image_root),
            read.items,
            list(read.loaded.issues),
            read.records_read,
            evaluated=len({item.fields["object_key"] for item in read.items}),
        )

    # ------------------------------------------------------------------ scores, table

    def score_run(self, data: "BenchmarkData", folder: Path, options: "RunOptions") -> list[SummaryRow]:
        from ground_r1.evaluation import refcoco, scores
        from ground_r1.evaluation.predictions import load_predictions

        predictions = load_predictions(folder)
        rows = [refcoco.score_prediction(p) for p in predictions]
        scores.write_scores(rows, folder / refcoco.SCORES_NAME)
        return [
            SummaryRow(
                self.name,
                f"Acc@0.5 {split}",
                None if result.standard is None else 100.0 * result.standard,
                result.expressions,
                result.no_box,
                result.failures,
                "",
                self.rule,
                False,
                (data.skipped_records if data is not None else 0),
                None if result.standard_se is None else 100.0 * result.standard_se,
                "standard error of the mean over expressions",
            )
            for split, result in refcoco.accuracy_by_split(rows).items()
        ]

    def write_run_table(self, folder: Path, options: "RunOptions") -> str | None:
        """``table.md`` and ``table.csv``: Acc@0.5 per split under the three labelled rules."""
        from ground_r1.evaluation import refcoco, scores
        from ground_r1.evaluation.identity import run_label
        from ground_r1.rollout_settings import run_header

        label = options.label or run_label(folder, options.protocol)
        header = [line for line in (run_header(folder),) if line]
        results = refcoco.accuracy_by_split(
            scores.load_scores(folder / refcoco.SCORES_NAME, required=("key", "dataset", "hit"))
        )
        markdown = refcoco.render_markdown(results, label, header=header)
        (folder / "table.md").write_text(markdown, encoding="utf-8")
        (folder / "table.csv").write_text(refcoco.render_csv(results), encoding="utf-8")
        return markdown

    def judge_items(self, data: "BenchmarkData", predictions: dict[str, dict[str, Any]]) -> list[Any]:
        raise ValueError(f"{self.name} is scored by rule: it has no judge")
