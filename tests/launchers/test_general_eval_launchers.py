"""The general-benchmark launchers end to end (SPEC §7) on the tiny model, over the release's own records.

Data: the release's samples of the 8 benchmarks (shared/data/release-format/*.sample.jsonl, read from there:
linked, never copied, as DATASET_ROOT/{name}.jsonl), placeholder images generated at DATASET_ROOT/{name}/{Image}
(SEED's extension-less ids as .jpg). MM-Vet is graded by the scripted HTTP server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluation"))
from fake_chat_server import FakeChatServer  # noqa: E402

from ground_r1.evaluation.benchmarks import list_benchmarks  # noqa: E402
from ground_r1.evaluation.benchmarks.mmvet import MMVET_GRADER_PROMPT, MMVET_RETRY_SUFFIX  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
KEY = "sk-general-SECRET-913"
SAMPLE_COUNTS = {
    "MME": 28,
    "POPE": 9,
    "SEED_Bench": 9,
    "MMBench_en_dev": 20,
    "MMMU_val": 6,
    "MMVet": 16,
    "RealworldQA": 6,
    "MME_RealWorld_Lite": 5,
}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dataset_root(release_format_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("general_eval")
    for name in list_benchmarks():
        sample = release_format_dir / f"{name}.sample.jsonl"
        (root / f"{name}.jsonl").symlink_to(sample)
        for line in sample.read_text().splitlines():
            path = root / name / json.loads(line)["Image"]
            path = path if path.suffix else path.with_name(path.name + ".jpg")
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (64, 48), (len(line) % 256, 90, 30)).save(path)
    return root


def launch(script: str, cwd: Path, env: dict[str, str], *args: str, expect: int = 0) -> subprocess.CompletedProcess:
    full = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("OPENAI_")
        and k
        not in (
            "MODEL_PATH",
            "DATASET_ROOT",
            "IMAGE_ROOT",
            "OUTPUT_DIR",
            "BENCHMARKS",
            "PROTOCOL",
            "REPO",
            "CALLER_DIR",
            "PY",
        )
    }
    full.update(NUM_GPUS="1", BATCH_SIZE="16", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", **env)
    result = subprocess.run(
        ["bash", str(REPO / "eval_general_dataset" / script), "--no_progress", *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == expect, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def grader(request, n):
    """v1_3 ("bottom left equation") is never gradable; v1_0 ("What is x") scores 1.0; every other answer 0.5."""
    item_line = request.user_content[len(MMVET_GRADER_PROMPT) + 1 :]
    if item_line.startswith("What is the answer to the bottom left equation?"):
        return ("reply", "no idea")
    return ("reply", "1.0" if item_line.startswith("What is x in the equation?") else "0.5")


def test_multi_ground_r1_runs_every_benchmark_and_grades_mmvet(tmp_path, dataset_root):
    env = {
        "DATASET_ROOT": str(dataset_root),
        "OUTPUT_DIR": "out",
        "OPENAI_BASE_URL": "",
        "OPENAI_API_KEY": KEY,
        "OPENAI_MODEL": "grader-test",
    }
    args = ("--max_turns", "3", "--max_new_tokens", "8")
    with FakeChatServer(policy=grader) as server:
        env["OPENAI_BASE_URL"] = server.base_url
        # v1_3 is never gradable: an item left ungraded exits 3 (rerun grades only it), as the VisCoT launchers.
        result = launch("multi_Ground_R1.sh", tmp_path, env, *args, expect=3)
        first_requests = server.chat_requests
        server.reset()
        again = launch("multi_Ground_R1.sh", tmp_path, env, *args, expect=3)  # resumes: nothing left but v1_3
        assert len(server.chat_requests) == 5 and "0 to predict" in again.stderr
    out = tmp_path / "out"
    summary = (out / "summary.md").read_text()
    assert summary in result.stdout and summary == (out / "summary.md").read_text()
    for name, count in SAMPLE_COUNTS.items():
        predicted = records(out / name / "predictions.jsonl")
        assert len(predicted) == count and all(p["status"] == "ok" and p["protocol"] == "ground_r1" for p in predicted)
        assert all(1 <= p["trajectory"]["num_turns"] <= 3 for p in predicted)
        assert len(records(out / name / "scores.jsonl")) == count
    metrics = {name: json.loads((out / name / "metrics.json").read_text())["metrics"] for name in SAMPLE_COUNTS}
    # MME pairs by image: 14 tasks, each 2 questions on 1 image; POPE splits from Category.
    assert metrics["MME"]["complete"] and {(t["n"], t["n_images"]) for t in metrics["MME"]["per_task"].values()} == {
        (2, 1)
    }
    assert {s: m["n"] for s, m in metrics["POPE"]["per_split"].items()} == {"adversarial": 3, "popular": 3, "random": 3}
    # SEED ids have no extension: found as .jpg; MMMU keeps its <image 1> markers in the prompt.
    assert all(p["image"].endswith(".jpg") for p in records(out / "SEED_Bench" / "predictions.jsonl"))
    assert all("<image 1>" in p["prompt"] for p in records(out / "MMMU_val" / "predictions.jsonl"))
    # MM-Vet: 16 answers; v1_3 asked 5 times (official retry) then left out; 1.0 + 14 x 0.5 over 15 = 53.3.
    assert len(first_requests) == 15 + 5
    v1_0 = next(r for r in first_requests if "What is x in the equation? | -1 <AND> -5 | " in r.user_content)
    assert v1_0.body["max_tokens"] == 3 and v1_0.body["model"] == "grader-test"
    assert sum(r.user_content.endswith(MMVET_RETRY_SUFFIX) for r in first_requests) == 4
    assert (metrics["MMVet"]["n_graded"], metrics["MMVet"]["n_failed"]) == (15, 1)
    # The table names the grader that graded (OPENAI_MODEL) and each number's rule, with its error bar; variants
    # follow their headline.
    assert (
        "| MMVet | total (LLM-judged) | MM-Vet official grader prompt (grader grader-test; official: gpt-4-0613) "
        "| 53.3 ± 3.3 | 16 |"
    ) in summary and "judged 15/16, 1 judgment(s) failed" in summary
    assert (
        "| MME | total (perception + cognition) |" in summary
        and "tasks" not in summary.split("| MME |")[1].split("\n")[0]
    )
    headline = [
        line for line in summary.splitlines() if line.startswith("| ") and " | " in line and "variant:" not in line
    ]
    assert [line.split(" | ")[0][2:] for line in headline][1:] == [
        "MME",
        "POPE",
        "POPE",
        "SEED_Bench",
        "MMBench_en_dev",
        "MMBench_en_dev",
        "MMMU_val",
        "MME_RealWorld_Lite",
        "RealworldQA",
        "MMVet",
    ]
    assert "| MMBench_en_dev | CircularEval accuracy | CircularEval (MMBench official" in summary
    assert "| POPE | accuracy | POPE authors (first sentence; No/no/not -> no, else yes) |" in summary
    assert (
        (out / "summary.csv")
        .read_text()
        .startswith("benchmark,metric,rule,variant,score,se,items,skipped,unparsed,left_out,notes,error_bar\n")
    )
    texts = [p.read_text() for p in out.rglob("*") if p.is_file()] + [result.stdout, result.stderr]
    assert all(KEY not in text for text in texts)


def test_multi_sft_with_the_ground_sft_protocol(tmp_path, dataset_root, tiny_model_dir):
    env = {
        "DATASET_ROOT": str(dataset_root),
        "OUTPUT_DIR": str(tmp_path / "out"),
        "MODEL_PATH": str(tiny_model_dir),
        "PROTOCOL": "ground_sft",
        "BENCHMARKS": "mme-rwl,seed",
    }
    result = launch("multi_SFT.sh", tmp_path, env, "--max_items", "3", "--max_new_tokens", "8", "--max_pixels", "12544")
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["MME_RealWorld_Lite", "SEED_Bench"]
    predicted = records(out / "MME_RealWorld_Lite" / "predictions.jsonl")
    assert len(predicted) == 3 and all(p["trajectory"]["num_turns"] == 2 for p in predicted)
    # Turn 1 asks for the box about the direct prompt: the question, its (A)..(E) options and the letter suffix.
    assert all(
        "(E)" in p["prompt"]
        and "Respond with only the letter (A, B, C, D, or E)." in p["prompt"]
        and "Please only provide the bounding box" in p["prompt"]
        for p in predicted
    )
    assert "MMVet" not in result.stdout and "| SEED_Bench | accuracy | lmms-eval 0.7.3 seedbench" in result.stdout
    with pytest.raises(AssertionError, match=r"PROTOCOL must be baseline \(or direct\) or ground_sft"):
        launch("multi_SFT.sh", tmp_path, {**env, "PROTOCOL": "ground_r1"})


def test_multi_sft_in_the_releases_folder_layout(tmp_path, dataset_root, tiny_model_dir):
    # Issue 15: the release keeps the JSONL files in eval_general_dataset/dataset/ and the images in
    # LVLM_benchmarks/{NAME}/; DATASET_ROOT = the JSONL folder alone used to give "image not found".
    jsonl, images = tmp_path / "eval_general_dataset" / "dataset", tmp_path / "LVLM_benchmarks"
    jsonl.mkdir(parents=True)
    images.mkdir()
    for name in ("POPE", "MMMU_val"):
        (jsonl / f"{name}.jsonl").symlink_to(dataset_root / f"{name}.jsonl")
        (images / name).symlink_to(dataset_root / name)
    env = {
        "DATASET_ROOT": str(jsonl),
        "IMAGE_ROOT": str(images),
        "OUTPUT_DIR": str(tmp_path / "out"),
        "MODEL_PATH": str(tiny_model_dir),
        "BENCHMARKS": "POPE,MMMU_val",
    }
    result = launch("multi_SFT.sh", tmp_path, env, "--max_items", "2", "--max_new_tokens", "4", "--max_pixels", "12544")
    predicted = records(tmp_path / "out" / "POPE" / "predictions.jsonl")
    assert [p["image"] for p in predicted] == [str(images / "POPE" / "images" / f"img_{i}.png") for i in (0, 1)]
    assert "- POPE: POPE.jsonl: 9 records read, 2 evaluated (2 kept by the item limit), 0 skipped" in result.stdout
