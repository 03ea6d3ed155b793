"""Side-by-side parity of our answer readers with lmms-eval 0.7.3's own function text, on random answers.

    cd /tmp && pip download --no-deps lmms-eval==0.7.3 && unzip -q -o lmms_eval-0.7.3-py3-none-any.whl -d lmms
    python benchmarks/scorer_parity/parity.py --lmms_root /tmp/lmms [--n 30000]

lmms-eval is never imported as a package (it is not a dependency): each reference function is taken from its
``tasks/<name>/utils.py`` file by ``ast`` and run beside ours on the same random answers (letters, yes/no words,
numbers, punctuation, answer cues). Prints the number of disagreements per reader; 0 everywhere is the claim of
docs/metrics.md. MMMU's multiple-choice parser is compared where ours reads a letter (where it reads none the
reference draws a random one, which we score wrong on purpose).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import re
import string
import typing

import numpy as np
import pandas as pd

from ground_r1.evaluation.benchmarks import mmmu_rules, reference


def load_functions(path: str, names: set[str], extra: dict | None = None) -> dict:
    """The named top-level functions/classes of a file (and its constant assignments), executed in a namespace."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    namespace = {
        "re": re,
        "np": np,
        "random": random,
        "string": string,
        "os": os,
        "pd": pd,
        "List": list,
        "Optional": typing.Optional,
        **(extra or {}),
    }
    for node in tree.body:
        wanted = getattr(node, "name", None) in names or isinstance(node, ast.Assign)
        if wanted:
            try:
                exec(compile(ast.Module([node], []), path, "exec"), namespace)
            except Exception:  # an assignment needing the package (config files): not used by these functions
                pass
    missing = names - set(namespace)
    if missing:
        raise SystemExit(f"{path}: cannot load {sorted(missing)}")
    return namespace


PIECES = list("ABCDEabcde ()., :;-=\n") + [
    "yes",
    "no",
    "Yes",
    "No",
    "not",
    "y",
    "n",
    "The answer is",
    "(A)",
    "B.",
    "1.06",
    "1,060",
    "so ",
    "is ",
    "red",
    "blue",
    "3.429",
    "Answer:",
    "option",
    "E",
    "Based on",
    "I pick",
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--lmms_root", required=True, help="folder holding the unpacked lmms_eval package")
    p.add_argument("--n", type=int, default=30000, help="random answers per reader")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    tasks = os.path.join(args.lmms_root, "lmms_eval", "tasks")
    quiet = {"eval_logger": type("Quiet", (), {"info": staticmethod(lambda *a, **k: None)})}
    mme = load_functions(f"{tasks}/mme/utils.py", {"parse_pred_ans"})
    mcq = load_functions(f"{tasks}/_task_utils/mcq_extract.py", {"extract_mcq_answer"})
    rwl = load_functions(f"{tasks}/mme_realworld/utils.py", {"extract_characters_regex"})
    mmb = load_functions(f"{tasks}/mmbench/mmbench_evals.py", {"MMBench_Evaluator"}, quiet)["MMBench_Evaluator"]()
    mmmu = load_functions(
        f"{tasks}/mmmu/utils.py",
        {"parse_open_response", "eval_open", "normalize_str", "extract_numbers", "check_is_number"},
    )
    mmmu_mc = load_functions(f"{tasks}/_task_utils/mmmu_mcq_utils.py", {"parse_mmmu_multi_choice_response"})
    rng = random.Random(args.seed)
    options = {"A": "red", "B": "blue", "C": "3.429"}
    disagree = dict.fromkeys(["mme", "mcq_extract", "mme_realworld", "mmbench", "mmmu_open", "mmmu_choice"], 0)
    for _ in range(args.n):
        text = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 12)))
        ref = mme["parse_pred_ans"](text)
        disagree["mme"] += (None if ref == "other" else ref) != reference.mme_yes_no(text)
        letters = ["A", "B", "C", "D"]
        disagree["mcq_extract"] += (mcq["extract_mcq_answer"](text, letters) or None) != reference.mcq_extract(
            text, letters
        )
        disagree["mme_realworld"] += (rwl["extract_characters_regex"](text) or None) != reference.mme_realworld_letter(
            text
        )
        ours = reference._mmbench_infer_option(text) or reference._mmbench_infer_text(text, options)
        disagree["mmbench"] += (mmb.can_infer(text, dict(options)) or None) != ours
        truth = rng.choice(["1.06", "red", "C", "1/64", "3.429", "1060"])
        ref = mmmu["eval_open"](truth, mmmu["parse_open_response"](text))
        disagree["mmmu_open"] += ref != mmmu_rules.mmmu_open_correct(mmmu_rules.mmmu_open_candidates(text), truth)
        ours = mmmu_rules.mmmu_choice(text, options)
        if ours is not None:
            disagree["mmmu_choice"] += mmmu_mc["parse_mmmu_multi_choice_response"](text, list(options), options) != ours
    print(json.dumps({"lmms_eval": "0.7.3", "answers_per_reader": args.n, "disagreements": disagree}))


if __name__ == "__main__":
    main()
