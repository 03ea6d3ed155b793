"""The benchmark contract is closed (issue 22): a spec written and registered in this file alone runs end to end
through the one evaluation entry point (read, infer, judge, score, table); nothing else had to change. VisCoT and
RefCOCO are specs of the same registry."""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import ground_r1
from ground_r1.evaluation.benchmarks import BenchmarkItem, BenchmarkSpec, register_benchmark, unregister_benchmark
from ground_r1.evaluation.benchmarks.parsing import extract_answer_span
from ground_r1.evaluation.judge import AskPlan
from ground_r1.evaluation.summary import ScoredBenchmark, SummaryRow
from ground_r1.evaluation.uncertainty import mean_estimate


@dataclass(frozen=True)
class ToyColourSpec(BenchmarkSpec):
    """Colour words; a grader scores each answer; the table reports the mean grade and the exact-match rate."""

    needs_judge: bool = True
    rule: str = "toy exact colour word"

    def parse_answer(self, text: str) -> str | None:
        words = extract_answer_span(text).strip().lower().split()
        return words[0].strip(".") if words else None

    def score_item(
        self, item: BenchmarkItem, prediction_text: str, *, judge_score: float | None = None
    ) -> dict[str, Any]:
        parsed = self.parse_answer(prediction_text)
        return {
            **self._base_record(item, judge_score),
            "parsed": parsed,
            "correct": parsed == item.answer.lower(),
            "judge_score": judge_score,
        }

    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        graded = [r["judge_score"] for r in records if r["judge_score"] is not None]
        return {
            "accuracy": 100.0 * sum(r["correct"] for r in records) / max(len(records), 1),
            "graded": 100.0 * sum(graded) / len(graded) if graded else None,
        }

    def summary_rows(self, metrics: dict[str, Any], scored: ScoredBenchmark, skipped: int = 0) -> list[SummaryRow]:
        return [
            self.summary_row(scored, skipped, "exact match", metrics["accuracy"], "toy notes"),
            self.summary_row(scored, skipped, "mean grade", metrics["graded"], which="graded", rule="toy grader"),
        ]

    def estimate(self, records, metric="headline"):
        if metric == "graded":
            return mean_estimate([100.0 * r["judge_score"] for r in records if r["judge_score"] is not None])
        return super().estimate(records, metric)

    def judge_plan(self) -> AskPlan:
        return AskPlan(
            parse=lambda reply: float(reply) if reply and reply.strip() in ("0", "1") else None,
            max_asks=1,
            expects="0 or 1",
        )

    def grader_messages(self, item: BenchmarkItem, prediction_text: str, *, retry: bool = False) -> list[dict]:
        return [{"role": "user", "content": f"truth: {item.answer} | answer: {prediction_text} | 0 or 1?"}]


TOY = ToyColourSpec(
    name="ToyColours",
    version="7",
    default_file="ToyColours.jsonl",
    aliases=("toy-colours",),
    direct_suffix="Answer with one colour word.",
    demo_records=({"Image": "a.png", "problem": "Which colour?", "solution": "red"},),
)


@pytest.fixture
def toy():
    register_benchmark(TOY)
    yield TOY
    unregister_benchmark(TOY.name)


def write_toy_data(root: Path) -> Path:
    (root / "ToyColours").mkdir(parents=True)
    for name, colour in (("a.png", (220, 30, 30)), ("b.png", (30, 30, 220))):
        Image.new("RGB", (56, 56), colour).save(root / "ToyColours" / name)
    records = [
        {"Image": "a.png", "problem": "Which colour fills the image?", "solution": "red"},
        {"Image": "b.png", "problem": "Which colour fills the image?", "solution": "<answer>blue</answer>"},
        {"Image": "missing.png", "problem": "Which colour?", "solution": "green"},
    ]
    (root / "ToyColours.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + "not json\n")
    return root


def test_no_module_of_the_pipeline_asks_which_class_a_spec_is():
    package = Path(ground_r1.__file__).parent
    offenders = []
    pipeline = [package / "evaluation" / name for name in ("general.py", "pipeline.py", "benchmark_run.py")]
    for path in [*pipeline, *package.joinpath("cli").glob("evaluate*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "isinstance":
                names = ast.unparse(node.args[1]) if len(node.args) > 1 else ""
                if "Spec" in names:
                    offenders.append(f"{path.name}: isinstance(..., {names})")
    assert not offenders


@pytest.mark.slow
def test_a_toy_spec_registered_here_runs_end_to_end_through_the_cli(
    toy, tmp_path, tiny_model_dir, fake_chat_server, monkeypatch
):
    from ground_r1.cli import evaluate

    root = write_toy_data(tmp_path / "data")
    out = tmp_path / "out"
    fake_chat_server.set_policy(lambda request, n: ("reply", "1"))
    monkeypatch.setenv("OPENAI_BASE_URL", fake_chat_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    monkeypatch.setenv("OPENAI_MODEL", "toy-grader")
    rc = evaluate.main(
        [
            "--protocol",
            "baseline",
            "--benchmarks",
            "toy-colours",
            "--dataset_root",
            str(root),
            "--output_dir",
            str(out),
            "--model_path",
            str(tiny_model_dir),
            "--max_new_tokens",
            "4",
            "--no_progress",
        ]
    )
    assert rc == 4  # two records skipped (a missing image, a line that is not JSON), the rest evaluated
    folder = out / "ToyColours"
    predictions = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
    assert [p["key"] for p in predictions] == ["ToyColours.jsonl:1", "ToyColours.jsonl:2"]
    assert predictions[0]["prompt"] == "Which colour fills the image?\nAnswer with one colour word."
    identity = json.loads((folder / "inference_config.json").read_text())
    assert (identity["benchmark"], identity["benchmark_version"], identity["protocol"]) == (
        "ToyColours",
        "7",
        "baseline",
    )
    grades = [json.loads(line) for line in (folder / "judgments.jsonl").read_text().splitlines()]
    assert sorted((g["key"], g["status"], g["score"]) for g in grades) == [
        ("ToyColours.jsonl:1", "ok", 1.0),
        ("ToyColours.jsonl:2", "ok", 1.0),
    ]
    scores = [json.loads(line) for line in (folder / "scores.jsonl").read_text().splitlines()]
    assert [s["answer"] for s in scores] == ["red", "blue"] and all(s["judge_score"] == 1.0 for s in scores)
    summary = (out / "summary.md").read_text()
    assert "| ToyColours | exact match | toy exact colour word |" in summary
    assert "| ToyColours | mean grade | toy grader | 100.0 ± 0.0 | 2 | 2 |" in summary
    skipped = [json.loads(line) for line in (out / "skipped_records.jsonl").read_text().splitlines()]
    assert [(s["line"], s["field"]) for s in skipped] == [(3, "Image"), (4, "json")]


def test_the_demo_set_holds_each_registered_specs_demo_records(toy, tmp_path):
    from ground_r1.evaluation import general

    root = general.write_demo_dataset(tmp_path)
    assert json.loads((root / "ToyColours.jsonl").read_text()) == {
        "Image": "a.png",
        "problem": "Which colour?",
        "solution": "red",
    }
    assert Image.open(root / "ToyColours" / "a.png").size == (112, 112)
    assert (root / "MME.jsonl").is_file()


def test_the_demo_runs_every_spec_with_demo_records_and_leaves_out_one_without(toy):
    from ground_r1.cli.evaluate import benchmark_names
    from ground_r1.evaluation.benchmarks import list_benchmarks

    register_benchmark(ToyColourSpec(name="ToyBare", version="1", default_file="ToyBare.jsonl"))
    try:
        assert "ToyBare" in benchmark_names("all") and "ToyColours" in benchmark_names("all")
        demo = benchmark_names("all", demo_data=True)
        assert "ToyBare" not in demo and "ToyColours" in demo and "MMVet" in demo
        assert benchmark_names("ToyBare", demo_data=True) == ["ToyBare"]  # named: run it (and say why it cannot)
        assert len(demo) == len(list_benchmarks()) - 1
    finally:
        unregister_benchmark("ToyBare")


@pytest.mark.slow
def test_a_toy_spec_given_one_file_runs_alone_in_the_output_folder(toy, tmp_path, tiny_model_dir):
    """``--data_path``: one benchmark's file, its folder OUTPUT_DIR itself (as VisCoT's and RefCOCO's runs); a spec
    whose table is its summary rows writes summary.md there; no judge endpoint: said in the table, exit 0."""
    from ground_r1.cli import evaluate

    root = write_toy_data(tmp_path / "data")
    (root / "ToyColours.jsonl").write_text(
        "".join(line + "\n" for line in (root / "ToyColours.jsonl").read_text().splitlines()[:2])
    )
    out = tmp_path / "out"
    base = ["--protocol", "baseline", "--benchmarks", "toy-colours", "--data_path", str(root / "ToyColours.jsonl")]
    argv = [*base, "--output_dir", str(out), "--model_path", str(tiny_model_dir), "--max_new_tokens", "4"]
    assert evaluate.main([*argv, "--no_progress"]) == 0
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".jsonl") == [
        "predictions.jsonl",
        "predictions.rank0.jsonl",
        "scores.jsonl",
    ]
    assert json.loads((out / "inference_config.json").read_text())["benchmark"] == "ToyColours"
    assert "| ToyColours | mean grade | toy grader | n/a |" in (out / "summary.md").read_text()


def test_viscot_and_refcoco_are_specs_of_the_one_registry_each_with_its_own_protocols():
    from ground_r1.evaluation.benchmarks import get_benchmark, list_benchmarks

    assert list_benchmarks("grounding") == ["viscot", "refcoco"]
    viscot, refcoco = get_benchmark("VisCoT"), get_benchmark("RefCOCO")
    assert (viscot.version, viscot.default_file, viscot.needs_judge) == (
        "1",
        "visualCoT_eval_subset150_choice.jsonl",
        True,
    )
    assert viscot.supported_protocols() == ("baseline", "ground_r1", "ground_sft")
    assert refcoco.supported_protocols() == ("refcoco",)
    assert get_benchmark("MME").supported_protocols() == ("baseline", "ground_r1", "ground_sft")
    assert get_benchmark("vstar").supported_protocols()[-2:] == ("likelihood", "ground_r1_likelihood")
    assert "viscot" not in list_benchmarks() and "refcoco" not in list_benchmarks()  # not in BENCHMARKS=all


def test_a_protocol_a_benchmark_does_not_support_is_a_configuration_error(tmp_path, capsys, caplog):
    from ground_r1.cli import evaluate

    out = str(tmp_path / "o")
    assert evaluate.main(["--protocol", "refcoco", "--benchmarks", "MME", "--output_dir", out]) == 1
    assert (
        "MME cannot be evaluated under --protocol refcoco: it supports baseline, ground_r1, ground_sft" in caplog.text
    )
    assert (
        evaluate.main(
            ["--protocol", "ground_r1", "--benchmarks", "viscot,MME", "--data_path", out, "--output_dir", out]
        )
        == 1
    )
    assert "--data_path is one benchmark's file, but --benchmarks names 2" in caplog.text
