"""Every benchmark by name (SPEC §7: the general set, the zoom-in benchmarks, VisCoT and RefCOCO); adding a benchmark is adding one entry to ``_BUILTIN`` (or calling
:func:`register_benchmark` from your own code): see "How to add a benchmark" in
:mod:`ground_r1.evaluation.benchmarks.spec`.

Names are the release's file stems (``MME``, ``MME_RealWorld_Lite``, ...). Lookups ignore case and
punctuation, so "mme-realworld-lite", "MME_RWL" and "mmerwl" all find the same spec; an unknown name
gets the list of valid names and the closest match.
"""

from __future__ import annotations

import difflib
import re

from ground_r1.evaluation.benchmarks.choice import (
    LETTER_SUFFIX_ABCD,
    LETTER_SUFFIX_ABCDE,
    SEED_DIMENSIONS,
    ChoiceSpec,
)
from ground_r1.evaluation.benchmarks.mmbench import MMBenchSpec
from ground_r1.evaluation.benchmarks.mme import MMESpec
from ground_r1.evaluation.benchmarks.mmmu import MMMUSpec
from ground_r1.evaluation.benchmarks.mmvet import MMVetSpec
from ground_r1.evaluation.benchmarks.pope import PopeSpec
from ground_r1.evaluation.benchmarks.realworldqa import RealWorldQASpec
from ground_r1.evaluation.benchmarks.refcoco import RefCOCOSpec
from ground_r1.evaluation.benchmarks.spec import BenchmarkSpec
from ground_r1.evaluation.benchmarks.viscot import VisCoTSpec
from ground_r1.evaluation.benchmarks.zoom_registry import ZOOM_BENCHMARKS

__all__ = [
    "SUITES",
    "UnknownBenchmarkError",
    "get_benchmark",
    "list_benchmarks",
    "register_benchmark",
    "unregister_benchmark",
]


class UnknownBenchmarkError(ValueError):
    """A benchmark name that is not registered; the message lists the valid names."""


_BUILTIN: tuple[BenchmarkSpec, ...] = (
    MMESpec(
        name="MME",
        version="2",
        default_file="MME.jsonl",
        description="MME: 14 yes/no tasks, acc + acc+ per task summed (perception 10, cognition 4)",
        demo_records=(
            {
                "Image": "images/existence/demo.png",
                "dataset": "existence",
                "solution": "Yes",
                "problem": "Is there a red square in the image? Please answer yes or no.",
            },
            {
                "Image": "images/existence/demo.png",
                "dataset": "existence",
                "solution": "No",
                "problem": "Is there a blue circle in the image? Please answer yes or no.",
            },
        ),
    ),
    PopeSpec(
        name="POPE",
        version="2",
        default_file="POPE.jsonl",
        description="POPE: object hallucination yes/no; acc/P/R/F1/yes-ratio per split",
        demo_records=(
            {
                "Question_id": "1",
                "Image": "images/img_0.png",
                "problem": "Is there a square in the image?",
                "solution": "yes",
                "Category": "random",
            },
            {
                "Question_id": "2",
                "Image": "images/img_0.png",
                "problem": "Is there a dog in the image?",
                "solution": "no",
                "Category": "popular",
            },
        ),
    ),
    ChoiceSpec(
        name="SEED_Bench",
        version="2",
        default_file="SEED_Bench.jsonl",
        aliases=("seed", "seedbench", "seed-bench-image"),
        description="SEED-Bench (image): 4-option letter accuracy per dimension",
        direct_suffix=LETTER_SUFFIX_ABCD,
        category_field="Question_Type",
        category_names=SEED_DIMENSIONS,
        reader="first_character",
        rule="lmms-eval 0.7.3 seedbench (first character)",
        demo_records=(
            {
                "Question_id": "1",
                "Image": "demo_1",
                "Question_Type": 5,
                "solution": "A",
                "Category": "",
                "problem": "How many squares are in the image?\nA. One\nB. Two\nC. Three\nD. Four",
            },
        ),
    ),
    MMBenchSpec(
        name="MMBench_en_dev",
        version="2",
        default_file="MMBench_en_dev.jsonl",
        aliases=("mmbench", "mmbench_en", "mmbench_dev"),
        description="MMBench (en, dev): CircularEval per question, hint included, nan options dropped",
        direct_suffix=LETTER_SUFFIX_ABCD,
        group_fields=("L2-category",),
        include_hint=True,
        drop_nan_options=True,
        rule="CircularEval (MMBench official; lmms-eval 0.7.3 mmbench_en_dev_static matcher)",
        demo_records=(
            {
                "Question_id": 1,
                "hint": "nan",
                "solution": "A",
                "Category": "color",
                "L2-category": "attribute_reasoning",
                "Image": "images/img_0.png",
                "problem": "What color is the square?\nA. red\nB. blue\nC. nan\nD. nan\n",
            },
        ),
    ),
    MMMUSpec(
        name="MMMU_val",
        version="2",
        default_file="MMMU_val.jsonl",
        aliases=("mmmu", "mmmu-validation"),
        description="MMMU (validation): official parser (letters; open answers), per subfield and difficulty",
        direct_suffix=LETTER_SUFFIX_ABCD,
        group_fields=("Subtask",),
        rule="lmms-eval 0.7.3 mmmu_val (MMMU official parser; no random guess)",
        demo_records=(
            {
                "Question_id": "validation_Demo_1",
                "Image": "images/img_0_image_1.png",
                "solution": "A",
                "problem": "<image 1> What shape is drawn?\nA. square\nB. circle\nC. triangle\nD. star",
                "Category": "Demo",
                "Subtask": "Easy",
                "Task": "MMMU_val",
            },
        ),
    ),
    ChoiceSpec(
        name="MME_RealWorld_Lite",
        version="2",
        default_file="MME_RealWorld_Lite.jsonl",
        aliases=("mme-rwl", "mmerwl", "mme-realworld", "mme_realworld_lite"),
        description="MME-RealWorld-Lite: 5-option letter accuracy per category, domain and task",
        direct_suffix=LETTER_SUFFIX_ABCDE,
        valid_letters="ABCDE",
        group_fields=("Subtask", "Task"),
        reader="mme_realworld",
        rule="lmms-eval 0.7.3 mme_realworld (first capital A-E)",
        demo_records=(
            {
                "Question_id": "perception/demo/color/1",
                "Image": "demo.png",
                "solution": "A",
                "problem": "What color is the square?\n(A) red\n(B) blue\n(C) green\n(D) yellow\n"
                "(E) The image does not feature the color.",
                "Category": "color",
                "Subtask": "Demo",
                "Task": "Perception",
            },
        ),
    ),
    RealWorldQASpec(
        name="RealworldQA",
        version="2",
        default_file="RealworldQA.jsonl",
        aliases=("rwqa", "realworld-qa"),
        description="RealWorldQA: exact match (letters for its multiple-choice items)",
        demo_records=(
            {
                "Image": "images/img_0.png",
                "solution": "square",
                "problem": "What shape is in the picture?\nPlease answer directly with a single word or number.",
            },
        ),
    ),
    MMVetSpec(
        name="MMVet",
        version="1",
        default_file="MMVet.jsonl",
        aliases=("mm-vet",),
        description="MM-Vet: LLM-graded open answers (official few-shot grader), per capability",
        demo_records=(
            {
                "Question_id": "v1_0",
                "Image": "v1_0.png",
                "solution": "red<AND>square",
                "Category": "rec",
                "problem": "What shape and color is the object?",
                "Task": "demo",
            },
        ),
    ),
)


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


_REGISTRY: dict[str, BenchmarkSpec] = {}
_LOOKUP: dict[str, str] = {}


def register_benchmark(spec: BenchmarkSpec) -> BenchmarkSpec:
    """Add a spec; its name and aliases must not collide (after normalisation) with registered ones.

    Raises:
        ValueError: a name or alias already taken, naming the benchmark that holds it.
    """
    keys = {_norm(spec.name), *(_norm(a) for a in spec.aliases)}
    for key in keys:
        if key in _LOOKUP:
            raise ValueError(
                f"cannot register benchmark {spec.name!r}: name or alias {key!r} already belongs to {_LOOKUP[key]!r}"
            )
    _REGISTRY[spec.name] = spec
    for key in keys:
        _LOOKUP[key] = spec.name
    return spec


def unregister_benchmark(name: str) -> BenchmarkSpec:
    """Remove a registered spec (its name and aliases); returns it.

    Raises:
        UnknownBenchmarkError: no benchmark is registered under ``name``.
    """
    spec = get_benchmark(name)
    del _REGISTRY[spec.name]
    for key in [k for k, v in _LOOKUP.items() if v == spec.name]:
        del _LOOKUP[key]
    return spec


# The paper's grounding benchmarks (SPEC §7): VisCoT, its main table, and RefCOCO; each the release's file.
GROUNDING_BENCHMARKS: tuple[BenchmarkSpec, ...] = (
    VisCoTSpec(
        name="viscot",
        version="1",
        default_file="visualCoT_eval_subset150_choice.jsonl",
        aliases=("visualcot", "visual-cot"),
        description="VisCoT: 13 sub-datasets, LLM judge and rule accuracy, the paper's AVG over 12",
    ),
    RefCOCOSpec(
        name="refcoco",
        version="1",
        default_file="RefCOCO_eval_subset_1000.jsonl",
        aliases=("refcoco_eval",),
        description="RefCOCO/+/g: Acc@0.5 per split (standard, any expression, the release's rule)",
    ),
)

for _spec in (*_BUILTIN, *ZOOM_BENCHMARKS, *GROUNDING_BENCHMARKS):
    register_benchmark(_spec)

SUITES = ("general", "zoom", "grounding")


def list_benchmarks(suite: str | None = "general") -> list[str]:
    """Canonical names of the registered benchmarks of ``suite``, in registration order: ``"general"`` (default)
    SPEC §7's set, what ``BENCHMARKS=all`` runs; ``"zoom"`` the zoom-in benchmarks (V*, HR-Bench,
    TreeBench), run when named; ``"grounding"`` VisCoT and RefCOCO (the ``eval/`` launchers); None every
    registered one."""
    return [name for name, spec in _REGISTRY.items() if suite is None or spec.suite == suite]


def get_benchmark(name: str) -> BenchmarkSpec:
    """The spec registered under ``name`` or one of its aliases (case and punctuation ignored).

    Raises:
        UnknownBenchmarkError: listing the valid names and the closest match.
    """
    key = _norm(name)
    if key in _LOOKUP:
        return _REGISTRY[_LOOKUP[key]]
    close = difflib.get_close_matches(key, list(_LOOKUP), n=1, cutoff=0.5)
    hint = f"; did you mean {_LOOKUP[close[0]]!r}?" if close else ""
    raise UnknownBenchmarkError(
        f"unknown benchmark {name!r}{hint} Valid names: {', '.join(list_benchmarks(None))} "
        f"(case and punctuation are ignored)"
    )
