"""VisCoT (SPEC §6-7) as a spec of the one registry: the paper's main benchmark, judged by an LLM and by rule.

Its run hooks replace the general ones wholesale, because VisCoT is read and scored as the release did:

- **Data** (:func:`ground_r1.evaluation.inference.read_viscot_items`): SPEC §6 records, every one validated first;
  a record with an unusable evidence box is evaluated with its box metric n/a (``box_notes``); the first 150
  items of each sub-dataset by default (SPEC §7). Image paths are the release's absolute ones, rewritten by
  ``--image_path_prefix`` / ``--image_root``.
- **Judge**: the VisCoT judge of SPEC §7 (``judge_plan`` None: :class:`ground_r1.evaluation.judge.Judge`'s own
  plan) on the extracted answer and the ground truth of each successful prediction.
- **Scores** (:mod:`ground_r1.evaluation.scores`): judge score, rule score (SPEC §3 accuracy under the
  ``letter_rule``) and the box metric per item, into ``scores.jsonl``.
- **Table** (:mod:`ground_r1.evaluation.tables`): per sub-dataset, the paper's AVG, judge and rule side by side,
  another run beside it (``--compare_to``); in a summary across benchmarks, the two AVG rows.
- **Demo**: the built-in synthetic set (:func:`ground_r1.demo.synthetic.ensure_default_dataset`), 8 items.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ground_r1.evaluation.benchmarks.grounding import GroundingSpec, left_out_count
from ground_r1.evaluation.summary import SummaryRow

if TYPE_CHECKING:
    from ground_r1.evaluation.benchmark_run import BenchmarkData, ReadOptions, RunOptions

__all__ = ["VisCoTSpec"]


@dataclass(frozen=True)
class VisCoTSpec(GroundingSpec):
    """VisCoT's benchmark file (``visualCoT_eval_subset150_choice.jsonl``): items, judge, scores, table."""

    needs_judge: bool = True  # the judge column; without an endpoint the table holds the rule column alone
    rule: str = "SPEC §7 LLM judge (score 0-1) and SPEC §3 rule accuracy, AVG over the paper's 12 sub-datasets"

    default_max_items: ClassVar[int] = 150  # per sub-dataset (SPEC §7)
    demo_max_items: ClassVar[int] = 8
    uses_letter_rule: ClassVar[bool] = True

    def supported_protocols(self) -> tuple[str, ...]:
        return ("baseline", "ground_r1", "ground_sft")

    # ------------------------------------------------------------------ data

    def demo_data(self, output_dir: str | Path, write: bool = True) -> tuple[Path, Path]:
        from ground_r1.demo.synthetic import ensure_default_dataset  # the embedded default: the demo's own set

        file = ensure_default_dataset() / "eval.jsonl"
        return file, file.resolve().parent

    def read_run(self, file: Path, image_root: Path, options: "ReadOptions") -> "BenchmarkData":
        from ground_r1.evaluation.benchmark_run import BenchmarkData
        from ground_r1.evaluation.inference import read_viscot_items

        read = read_viscot_items(
            file,
            image_root=image_root,
            path_prefix=options.image_path_prefix,
            max_items_per_dataset=self.item_limit(options),
            min_pixels=options.min_pixels,
            max_pixels=options.max_pixels,
            skip_bad_records=options.skip_bad_records,
        )
        loaded = read.loaded
        return BenchmarkData(
            self,
            Path(file),
            Path(image_root),
            read.items,
            list(loaded.issues),
            read.records_read,
            box_notes=list(loaded.box_notes),
            box_issue_records=loaded.records_with_box_issues,
        )

    # ------------------------------------------------------------------ judge, scores, table

    def judge_items(self, data: "BenchmarkData", predictions: dict[str, dict[str, Any]]) -> list[Any]:
        from ground_r1.evaluation.scores import judge_items

        return judge_items(predictions.values())

    def score_run(self, data: "BenchmarkData", folder: Path, options: "RunOptions") -> list[SummaryRow]:
        from ground_r1.evaluation import scores, tables
        from ground_r1.evaluation.judge import judgments_path, load_judgments
        from ground_r1.evaluation.predictions import load_predictions
        from ground_r1.rewards.registry import build_registry

        predictions = load_predictions(folder)
        judged = judgments_path(folder)
        judgments = load_judgments(judged) if judged.is_file() else None
        registry = build_registry(letter_rule=options.letter_rule)
        rows = scores.score_predictions(predictions, judgments, registry)
        scores.write_scores(rows, folder / scores.SCORES_NAME)
        left_out, skipped = left_out_count(data, predictions), data.skipped_records if data is not None else 0
        table = tables.summarize(rows, self.name, options.max_failure_share, options.allow_failures)
        return [
            self._avg_row(table.judge_avg, "accuracy (LLM judge)", table, left_out, skipped),
            self._avg_row(table.rule_avg, "accuracy (rule)", table, left_out, skipped),
        ]

    def _avg_row(self, avg: Any, metric: str, table: Any, left_out: int, skipped: int) -> SummaryRow:
        items = sum(s.items for s in table.stats.values())
        value = None if avg.value is None else 100.0 * avg.value
        se = None if avg.se is None else 100.0 * avg.se
        return SummaryRow(
            self.name,
            f"{table.avg_label} {metric}",
            value,
            items,
            0,
            left_out,
            avg.note,
            self.rule,
            False,
            skipped,
            se,
            "bootstrap over items within sub-datasets" if se is not None else "",
        )

    def write_run_table(self, folder: Path, options: "RunOptions") -> str | None:
        """``table.md`` and ``table.csv`` (:mod:`ground_r1.evaluation.tables`); with ``compare_to``, that run's
        column group first (e.g. the baseline beside Ground-R1)."""
        from ground_r1.evaluation import scores, tables
        from ground_r1.evaluation.identity import run_label
        from ground_r1.rollout_settings import run_header

        label = options.label or run_label(folder, options.protocol)
        header = [line for line in (run_header(folder),) if line]
        runs = [
            tables.summarize(
                scores.load_scores(folder / scores.SCORES_NAME),
                label,
                options.max_failure_share,
                options.allow_failures,
            )
        ]
        if options.compare_to:
            other = Path(options.compare_to)
            other_label = run_label(other, other.name)
            if other_label == label:
                other_label, label = f"{other_label} ({other.name})", f"{label} ({folder.name})"
                runs[0].label = label
            runs.insert(
                0,
                tables.summarize(
                    scores.load_scores(other / scores.SCORES_NAME),
                    other_label,
                    options.max_failure_share,
                    options.allow_failures,
                ),
            )
            header = [f"{other_label}: {line}" for line in (run_header(other),) if line] + [
                f"{label}: {line}" for line in header
            ]
        md_path, _ = tables.write_tables(runs, folder, header=header)
        return md_path.read_text(encoding="utf-8")
