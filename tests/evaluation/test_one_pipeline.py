"""One evaluation pipeline (issue 22): one entry point, one protocol vocabulary, one judge stage and file; the old
general-benchmark command and its names kept as aliases."""

from __future__ import annotations

import json

import pytest

from ground_r1.cli import evaluate, evaluate_general
from ground_r1.evaluation.identity import PROTOCOLS, canonical_protocol, engine_protocol
from ground_r1.evaluation.judge import JUDGMENTS_NAME, judgments_path


def test_direct_is_the_baseline_protocols_other_name_and_never_recorded():
    assert canonical_protocol("direct") == "baseline" and "direct" not in PROTOCOLS
    assert canonical_protocol("ground_sft") == "ground_sft"
    with pytest.raises(ValueError, match="unknown protocol 'grounding'; valid: ground_r1, baseline, ground_sft"):
        canonical_protocol("grounding")
    assert engine_protocol("ground_r1_likelihood") == "ground_r1"


def test_the_judge_stage_and_flag_have_one_name_and_take_the_old_one():
    assert evaluate.parse_stages("infer,grade,score") == ["infer", "judge", "score"]
    parser = evaluate.build_parser()
    base = ["--protocol", "baseline", "--output_dir", "o"]
    assert parser.parse_args(base).judge is True
    assert parser.parse_args([*base, "--no-grade"]).judge is False
    assert parser.parse_args([*base, "--no-judge"]).judge is False
    with pytest.raises(SystemExit):
        evaluate.parse_stages("infer,grading")


def test_the_general_command_is_the_one_entry_point_with_all_benchmarks():
    args = evaluate_general.build_parser().parse_args(["--protocol", "direct", "--output_dir", "o"])
    assert args.benchmarks == "all" and args.protocol == "direct"  # main() records it as "baseline"
    assert evaluate.build_parser().parse_args(["--protocol", "baseline", "--output_dir", "o"]).benchmarks is None
    # Its score stage wrote the summary: now the table stage, added where the old command asked for a score.
    assert evaluate_general._old_stages(["--stages", "infer,grade,score", "--x"]) == [
        "--stages",
        "infer,grade,score,table",
        "--x",
    ]
    assert evaluate_general._old_stages(["--stages=score"]) == ["--stages=score,table"]
    assert evaluate_general._old_stages(["--stages", "infer"]) == ["--stages", "infer"]


def test_without_benchmarks_the_eval_launchers_benchmark_runs_alone():
    assert evaluate.benchmark_names(None, "refcoco") == ["refcoco"]
    assert evaluate.benchmark_names(None, "ground_sft") == ["viscot"]
    assert evaluate.benchmark_names("grounding") == ["viscot", "refcoco"]
    assert evaluate.benchmark_names("zoom")[0] == "vstar"


def test_a_folder_judged_under_the_old_file_name_resumes_from_it(tmp_path):
    record = {"key": "MMVet.jsonl:1", "status": "ok", "score": 1.0}
    (tmp_path / "mmvet_grades.jsonl").write_text(json.dumps(record) + "\n")
    path = judgments_path(tmp_path)
    assert path == tmp_path / JUDGMENTS_NAME and json.loads(path.read_text()) == record
    assert not (tmp_path / "mmvet_grades.jsonl").exists()
    other = tmp_path / "both"
    other.mkdir()
    (other / JUDGMENTS_NAME).write_text("new\n")
    (other / "mmvet_grades.jsonl").write_text("old\n")
    assert judgments_path(other).read_text() == "new\n" and (other / "mmvet_grades.jsonl").read_text() == "old\n"


@pytest.mark.slow
def test_viscot_and_a_general_benchmark_run_together_each_in_its_folder(tmp_path, tiny_model_dir):
    """Specs of one registry run in one command: each benchmark its folder and identity, one summary with VisCoT's
    two AVG rows beside MME's; on the built-in set each benchmark keeps its own demo size (VisCoT 8 of 100)."""
    out = tmp_path / "out"
    argv = ["--protocol", "baseline", "--benchmarks", "viscot,MME", "--output_dir", str(out)]
    rc = evaluate.main([*argv, "--model_path", str(tiny_model_dir), "--max_new_tokens", "2", "--no_progress"])
    assert rc == 0
    for name, items in (("viscot", 8), ("MME", 2)):
        identity = json.loads((out / name / "inference_config.json").read_text())
        assert (identity["benchmark"], identity["protocol"]) == (name, "baseline")
        assert len((out / name / "predictions.jsonl").read_text().splitlines()) == items
    assert (out / "viscot" / "scores.jsonl").is_file() and not (out / "viscot" / "table.md").exists()
    summary = (out / "summary.md").read_text()
    assert "| viscot | AVG (0 of 12) accuracy (LLM judge) |" in summary and "| not judged |" in summary
    assert (
        "| viscot | AVG (0 of 12) accuracy (rule) |" in summary
        and "| MME | total (perception + cognition) |" in summary
    )
    assert "- viscot: eval.jsonl: 100 records read, 8 evaluated (8 kept by the item limit), 0 skipped" in summary
