"""Error bars (ground_r1.evaluation.uncertainty): the standard error of a mean, the seeded bootstrap over items or
groups, and the benchmark specs that feed them (issue 17)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ground_r1.evaluation.benchmarks import get_benchmark
from ground_r1.evaluation.uncertainty import bootstrap_estimate, mean_estimate, mean_of_group_means


def test_mean_estimate_is_the_standard_error_of_the_mean_over_items():
    est = mean_estimate([1.0, 0.0, 1.0, 1.0, None, float("nan")])  # None and NaN are not items
    assert (est.value, est.n, est.method) == (0.75, 4, "mean")
    assert est.se == pytest.approx(0.5 / math.sqrt(4))  # s = 0.5 (ddof 1)
    assert est.cell(1, scale=100) == "75.0 ± 25.0"
    assert mean_estimate([0.3]).se is None and mean_estimate([0.3]).cell(2) == "0.30 ± n/a"
    assert mean_estimate([]).value is None and mean_estimate([]).cell() == "n/a"


def test_bootstrap_of_a_mean_agrees_with_the_analytic_standard_error_and_is_reproducible():
    rng = np.random.default_rng(7)
    values = rng.integers(0, 2, size=400).astype(float)
    boot = bootstrap_estimate(values, lambda rows: float(rows[:, 0].mean()))
    analytic = values.std(ddof=0) / math.sqrt(values.size)  # what the bootstrap estimates
    assert boot.value == pytest.approx(values.mean())
    assert boot.se == pytest.approx(analytic, rel=0.08)
    assert (boot.resamples, boot.seed, boot.units, boot.n) == (1000, 0, 400, 400)
    assert bootstrap_estimate(values, lambda rows: float(rows[:, 0].mean())).se == boot.se  # seeded: same digits
    assert bootstrap_estimate(values, lambda rows: float(rows[:, 0].mean()), seed=1).se != boot.se


def test_stratified_resamples_keep_every_unit_in_its_stratum():
    strata = ["a"] * 3 + ["b"] * 5
    rows = np.asarray([[0.0]] * 3 + [[1.0]] * 5)  # the value says the stratum
    seen = []

    def statistic(sample: np.ndarray) -> float:
        seen.append(sample[:, 0].tolist())
        return float(sample[:, 0].sum())

    est = bootstrap_estimate(rows, statistic, strata=strata, resamples=50)
    assert all(s == [0.0] * 3 + [1.0] * 5 for s in seen)  # every resample: 3 from a, 5 from b, in place
    assert est.se == 0.0 and est.value == 5.0


def test_mean_of_group_means_is_the_viscot_avg_with_a_bootstrap_within_groups():
    groups = ["docvqa"] * 4 + ["gqa"] * 2
    values = [1.0, 1.0, 0.0, 0.0, 1.0, 1.0]
    est = mean_of_group_means(groups, values)
    assert est.value == pytest.approx((0.5 + 1.0) / 2)  # not the pooled 4/6
    # gqa has no spread; docvqa's mean has a bootstrap SE of ~0.5/2 = 0.25 (pop. sd / sqrt(4)), halved by the AVG.
    assert est.se == pytest.approx(0.125, rel=0.1)
    assert est.describe().startswith("bootstrap standard error, 1000 resamples (seed 0) over 6 items (resampled")


def _mme_records(pattern):
    """Records of two MME tasks; pattern[task] = list of (correct_q1, correct_q2) per image."""
    spec = get_benchmark("MME")
    out = []
    for task, images in pattern.items():
        for i, pair in enumerate(images):
            for j, correct in enumerate(pair):
                out.append(
                    {
                        "key": f"{task}{i}{j}",
                        "benchmark": "MME",
                        "task": task,
                        "image_group": f"{task}/{i}.png",
                        "correct": correct,
                        "parsed": "yes",
                        "variants": {"release": correct},
                    }
                )
    return spec, out


def test_mme_total_is_bootstrapped_over_images_within_their_task():
    spec, records = _mme_records(
        {
            "existence": [(True, True), (True, False), (False, False), (True, True)],
            "count": [(True, True), (True, True), (False, True), (True, False)],
        }
    )
    metrics = spec.aggregate(records)
    est = spec.estimate(records)
    assert est.value == pytest.approx(metrics["overall"])  # the statistic is the MME total itself
    assert (est.n, est.units, est.method) == (16, 8, "bootstrap")
    assert "images (each with its questions, resampled within its task)" in est.describe()
    # Pairs stay together: resampling whole images, a task's acc and acc+ move together; the spread is large for
    # 4 images per task and stays well below the 200-point range of one task.
    assert 20.0 < est.se < 80.0
    # A degenerate case: every image of every task right -> no spread.
    spec, perfect = _mme_records({"existence": [(True, True)] * 3, "count": [(True, True)] * 3})
    assert spec.estimate(perfect).se == 0.0 and spec.estimate(perfect).value == 400.0


def test_a_spec_can_feed_its_own_groups_into_the_generic_bootstrap():
    """The hook a grouped score (e.g. MMBench CircularEval: a question counts only when all its circular variants
    are right) plugs into: per-group rows and a statistic; the summary row carries what it returns."""
    from dataclasses import dataclass

    from ground_r1.evaluation import general
    from ground_r1.evaluation.benchmarks.choice import ChoiceSpec

    @dataclass(frozen=True)
    class AllVariantsRight(ChoiceSpec):
        def estimate(self, records, metric="headline"):
            groups: dict[str, list[bool]] = {}
            for r in records:
                groups.setdefault(r["key"].split("#")[0], []).append(bool(r["correct"]))
            rows = [[100.0 * all(v)] for v in groups.values()]
            return bootstrap_estimate(rows, lambda s: float(s[:, 0].mean()), items=len(records), unit="questions")

    spec = AllVariantsRight(name="Circ", version="t", default_file="c.jsonl")
    records = [
        {
            "key": f"q{q}#{v}",
            "benchmark": "Circ",
            "correct": not (q == 0 and v == 1),
            "parsed": "A",
            "correct_release_rule": True,
        }
        for q in range(3)
        for v in range(2)
    ]
    scored = general.ScoredBenchmark(records=records)
    (row,) = general.summary_rows(spec, {"accuracy": 100 * 2 / 3}, scored)
    assert row.items == 6 and row.error_bar == (
        "bootstrap standard error, 1000 resamples (seed 0) over 3 questions (6 items)"
    )
    assert row.se == pytest.approx(spec.estimate(records).se) and row.se > 0


def _mmbench_records(outcomes, incomplete=0):
    """MMBench records (issue 16's fields) of questions with two rotated copies each: outcomes[q] = (copy 0 right,
    copy 1 right, copy 1 right by the lenient reader); ``incomplete`` more questions whose copy 1 has no record."""
    out = []
    for q, (first, second, lenient) in enumerate(outcomes):
        for copy, right, loose in ((0, first, first), (1, second, lenient)):
            out.append(
                {
                    "key": f"q{q}c{copy}",
                    "benchmark": "MMBench_en_dev",
                    "circular_group": q,
                    "circular_copy": copy,
                    "circular_size": 2,
                    "correct": right,
                    "parsed": "A",
                    "category": "color",
                    "variants": {"lenient": loose, "release": right},
                }
            )
    for q in range(len(outcomes), len(outcomes) + incomplete):
        out.append(
            {
                "key": f"q{q}c0",
                "benchmark": "MMBench_en_dev",
                "circular_group": q,
                "circular_copy": 0,
                "circular_size": 2,
                "correct": True,
                "parsed": "A",
                "category": "color",
                "variants": {"lenient": True, "release": True},
            }
        )
    return out


def test_mmbench_circular_eval_is_bootstrapped_over_questions_each_with_its_copies():
    """Issues 16 + 17: CircularEval's unit is the question (its copies stand or fall together), so its error bar is a
    bootstrap over questions, one 0/1 row per complete question; a question with a copy missing is left out of the
    error bar as it is of the number."""
    from ground_r1.evaluation import general

    spec = get_benchmark("MMBench")
    # 40 questions: 30 right on both copies, 10 right on copy 0 only (the lenient reader rescues 5 of those); one
    # more question with its copy 1 missing.
    outcomes = [(True, True, True)] * 30 + [(True, False, True)] * 5 + [(True, False, False)] * 5
    records = _mmbench_records(outcomes, incomplete=1)
    metrics = spec.aggregate(records)
    assert (metrics["circular_accuracy"], metrics["n_questions"], metrics["n_incomplete"]) == (75.0, 40, 1)
    est = spec.estimate(records)
    assert (est.value, est.n, est.units, est.method) == (75.0, 80, 40, "bootstrap")
    assert est.describe() == (
        "bootstrap standard error, 1000 resamples (seed 0) over 40 questions (each with its rotated copies) (80 items)"
    )
    # The bootstrap SE of a 0/1 mean over 40 questions: about sqrt(0.75 x 0.25 / 40) = 6.85 points, where 80 copies
    # counted as independent items would claim about 4.
    assert est.se == pytest.approx(100 * math.sqrt(0.75 * 0.25 / 40), rel=0.15)
    lenient = spec.estimate(records, "variant:lenient")
    assert (lenient.value, lenient.units) == (87.5, 40) and lenient.se < est.se  # 35 of 40: less spread
    single = spec.estimate(records, "single_pass")  # the 41 originals, all right: a mean with no spread
    assert (single.value, single.n, single.se, single.method) == (100.0, 41, 0.0, "mean")
    per_row = spec.estimate(records, "variant:release")  # the release's per-row number: every one of the 81 rows
    assert (per_row.value, per_row.n, per_row.method) == (pytest.approx(100 * 71 / 81), 81, "mean")
    # The summary rows carry them: CircularEval and its lenient variant over questions, the others over rows.
    rows = general.summary_rows(spec, metrics, general.ScoredBenchmark(records=records))
    assert [(r.metric, r.variant, r.se) for r in rows] == [
        ("CircularEval accuracy", False, est.se),
        ("single-pass accuracy (originals only)", False, 0.0),
        ("CircularEval accuracy", True, lenient.se),
        ("per-row accuracy", True, per_row.se),
    ]
    assert "75.0 ± " + f"{est.se:.1f}" in general.render_summary_markdown(rows, "x")


def test_a_variant_rule_gets_the_same_estimator_as_its_headline():
    # MME's release-rule total: the bootstrap over images within their task, on the variant's flags.
    spec, records = _mme_records(
        {
            "existence": [(True, True), (True, False), (False, False), (True, True)],
            "count": [(True, True), (True, True), (False, True), (True, False)],
        }
    )
    for r in records:  # the release rule reads one answer differently: existence image 1's second question right
        r["variants"]["release"] = r["correct"] or r["key"] == "existence11"
    metrics = spec.aggregate(records)
    release = spec.estimate(records, "variant:release")
    assert release.value == pytest.approx(metrics["variants"]["release"]) != pytest.approx(metrics["overall"])
    assert (release.units, release.method) == (8, "bootstrap") and release.se > 0
    # A mean-scored benchmark's variant: the standard error of the mean of its flags.
    pope = get_benchmark("POPE")
    flags = [True, False, True, True]
    recs = [{"correct": True, "variants": {"lmms_eval": f}} for f in flags]
    assert pope.estimate(recs, "variant:lmms_eval").se == pytest.approx(mean_estimate([100.0 * f for f in flags]).se)
