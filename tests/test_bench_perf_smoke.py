"""The performance benchmark (benchmarks/perf/bench_rollout.py) runs end to end with the smallest settings."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "perf" / "bench_rollout.py"
FIGURES = (
    "rollout_s",
    "step_s",
    "generated_tokens",
    "decoded_tokens",
    "trained_tokens",
    "generated_tokens_per_s",
    "trained_tokens_per_s",
    "peak_memory_mib",
    "loss_pass_s",
    "loss_real_positions",
    "loss_batch_fill",
    "train_tflops_per_s",
)


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_the_benchmark_writes_every_figure_finite_and_positive(tmp_path):
    out = tmp_path / "perf.json"
    # 1 question, N = G1 = 2 (no fork): slot 0 answers in round 1, slot 1 grounds then answers in round 2;
    # 28 tokens per turn is the smallest budget that fits the scripted turns with their eos.
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--questions",
        "1",
        "--num_generations",
        "2",
        "--g1",
        "2",
        "--max_turns",
        "2",
        "--max_new_tokens_per_turn",
        "28",
        "--repeats",
        "1",
        "--out",
        str(out),
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())

    # n: (a) without vision reuse; k: without the KV cache carried between rounds; p: TRL's padded loss batch
    assert sorted(result["modes"]) == ["a", "b", "c", "k", "n", "p"]
    assert len(result["steps"]) == 6  # one repeat of each loop
    for step in result["steps"]:
        for name in FIGURES:
            assert _positive(step[name]), (step["mode"], name, step[name])
    for mode, figures in result["summary"].items():
        for name in FIGURES:
            assert all(_positive(figures[name][k]) for k in ("min", "median", "max")), (mode, name)
    for name, ratio in result["ratios"].items():
        assert all(_positive(ratio[k]) for k in ("min", "median", "max")), name
    assert {
        "a/b rollout s per generated token",
        "c/a rollout s",
        "a/b loss s per real position",
        "p/a loss-pass s",
        "k/a rollout s",
    } <= set(result["ratios"])

    a, b, c, n, k, p = (next(s for s in result["steps"] if s["mode"] == m) for m in "abcnkp")
    # (a): round 1 = 2 rows x 28 tokens, round 2 = slot 1 only: 3 turns of 28 tokens kept and decoded.
    assert (a["generated_tokens"], a["decoded_tokens"], a["rounds"]) == (84, 84, 2)
    # (c) keeps the same turns but regenerates the finished slot 0 in round 2 too: 4 x 28 decoded.
    assert (c["generated_tokens"], c["decoded_tokens"], c["rounds"]) == (84, 112, 2)
    assert b["generated_tokens"] == 2 * 28  # TRL: N = 2 single-turn completions of 28 tokens
    assert (n["generated_tokens"], n["decoded_tokens"]) == (84, 84)  # the same work as (a)
    # (a) encodes the original once (its 2 round-1 rows share it) and slot 1's crop once; round 2 continues from
    # round 1's KV cache, so only the crop is fed. (k) prefills round 2 whole: the original is served again.
    assert (a["vision"]["images_encoded"], a["vision"]["images_reused"]) == (2, 1)
    assert (k["vision"]["images_encoded"], k["vision"]["images_reused"]) == (2, 2)
    assert result["checks"]["a_c_same_trajectories"] is True
    assert result["checks"]["a_finish_rounds"] == {"1": 1, "2": 1}
    # The loss batch: slot 0 (1 turn) and slot 1 (2 turns, a crop) differ in length by a turn and a crop turn;
    # TRL's padded layout pads slot 0 to slot 1's width, ours does not (one bucket each, or one packed row).
    assert p["loss_batch_fill"] == p["loss_batch_fill_padded"] < 0.9
    assert a["loss_batch_fill"] == 1.0 and a["loss_batch_fill_padded"] == p["loss_batch_fill_padded"]
    assert a["loss_real_positions"] == p["loss_real_positions"]  # the same trajectories, laid out otherwise
    # Round 2 of (a) continued from round 1's cache (slot 1's prompt and first turn); (k) prefilled it again.
    assert a["kv_reused_tokens"] > 0 and k["kv_reused_tokens"] == 0
    assert (k["generated_tokens"], k["decoded_tokens"]) == (84, 84)
    # MFU inputs: model FLOPs of the loss pass per second, no peak named on CPU.
    assert a["mfu"] == {} and result["parameter_counts"]["trainable_lm"] > 0
