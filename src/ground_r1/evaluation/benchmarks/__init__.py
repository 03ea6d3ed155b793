"""General LVLM benchmarks (SPEC §7): specs, registry, answer parsing and metrics.

Typical use::

    spec = get_benchmark("MME")
    items = spec.load("eval_general_dataset/dataset/MME.jsonl", dataset_root="/data/MME")
    prompt = spec.direct_prompt(items[0])          # or spec.question(item) for Ground-R1's protocol
    records = [spec.score_item(item, text) for item, text in zip(items, predictions)]
    metrics = spec.aggregate(records)               # paper units (x100); spec.headline(metrics)
"""

from __future__ import annotations

from ground_r1.evaluation.benchmarks.choice import ChoiceSpec
from ground_r1.evaluation.benchmarks.mmbench import MMBenchSpec
from ground_r1.evaluation.benchmarks.mme import MMESpec
from ground_r1.evaluation.benchmarks.mmmu import MMMUSpec
from ground_r1.evaluation.benchmarks.mmvet import (
    MMVetSpec,
    mmvet_grader_messages,
    parse_mmvet_score,
)
from ground_r1.evaluation.benchmarks.parsing import (
    extract_answer_span,
    extract_choice_letter,
    parse_options,
    parse_yes_no_mme_official,
)
from ground_r1.evaluation.benchmarks.pope import PopeSpec
from ground_r1.evaluation.benchmarks.realworldqa import RealWorldQASpec
from ground_r1.evaluation.benchmarks.registry import (
    UnknownBenchmarkError,
    get_benchmark,
    list_benchmarks,
    register_benchmark,
    unregister_benchmark,
)
from ground_r1.evaluation.benchmarks.spec import BenchmarkFileError, BenchmarkItem, BenchmarkSpec

__all__ = [
    "BenchmarkFileError",
    "BenchmarkItem",
    "BenchmarkSpec",
    "ChoiceSpec",
    "MMBenchSpec",
    "MMESpec",
    "MMMUSpec",
    "MMVetSpec",
    "PopeSpec",
    "RealWorldQASpec",
    "UnknownBenchmarkError",
    "extract_answer_span",
    "extract_choice_letter",
    "get_benchmark",
    "list_benchmarks",
    "mmvet_grader_messages",
    "parse_mmvet_score",
    "parse_options",
    "parse_yes_no_mme_official",
    "register_benchmark",
    "unregister_benchmark",
]
