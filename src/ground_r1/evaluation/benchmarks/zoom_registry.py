"""The zoom-in benchmarks' registry entries (issue 18), registered by :mod:`.registry` after SPEC §7's set."""

from __future__ import annotations

from ground_r1.evaluation.benchmarks.hrbench import HRBenchSpec
from ground_r1.evaluation.benchmarks.spec import BenchmarkSpec
from ground_r1.evaluation.benchmarks.treebench import TreeBenchSpec
from ground_r1.evaluation.benchmarks.vstar import VSTAR_SUFFIX, VStarSpec

__all__ = ["ZOOM_BENCHMARKS"]


def _hrbench(resolution: str) -> HRBenchSpec:
    return HRBenchSpec(
        name=f"hrbench_{resolution}",
        version="1",
        default_file=f"hr_bench_{resolution}.tsv",
        aliases=(f"hr-bench-{resolution}", f"hr_bench_{resolution}"),
        description=f"HR-Bench {resolution.upper()}: 200 questions x 4 option rotations, mean over cycle groups",
        layout="tsv",
        layouts=(
            (f"hr_bench_{resolution}.tsv", "tsv"),
            (f"hr_bench_{resolution}.parquet", "parquet"),
            (f"hrbench_{resolution}.parquet", "parquet"),
            (f"hr-bench_{resolution}.zoomeye.jsonl", "jsonl"),
            (f"annotation_hr-bench_{resolution}.json", "jsonl"),
        ),
    )


ZOOM_BENCHMARKS: tuple[BenchmarkSpec, ...] = (
    VStarSpec(
        name="vstar",
        version="1",
        default_file="direct_attributes",
        aliases=("vstar_bench", "v-star"),
        description="V* Bench (official per-image JSON folder): 191 questions, options shuffled per item (seed 0)",
        direct_suffix=VSTAR_SUFFIX,
        layout="vstar_folder",
        layouts=(("vstar_bench", "vstar_folder"),),
    ),
    VStarSpec(
        name="vstar_hf",
        version="1",
        default_file="test_questions.jsonl",
        aliases=("vstar_test_questions",),
        description="V* Bench from the HF test_questions.jsonl (short options, the authors' letters)",
        direct_suffix=VSTAR_SUFFIX,
        layouts=(("test_questions.jsonl", "jsonl"),),
        hf_questions=True,
        option_seed=None,
    ),
    _hrbench("4k"),
    _hrbench("8k"),
    TreeBenchSpec(
        name="treebench",
        version="1",
        default_file="TreeBench.tsv",
        aliases=("tree-bench",),
        description="TreeBench: 405 questions, TreeVGR accuracy and mIoU (built from the described format)",
        layout="tsv",
        layouts=(("TreeBench.tsv", "tsv"), ("TreeBench.parquet", "parquet")),
    ),
)
