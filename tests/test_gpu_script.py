"""benchmarks/gpu/run.sh (the GPU check of issue 19) keeps working: on CPU it runs its steps at tiny sizes."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_gpu_script_runs_on_cpu_in_tiny_geometry(tmp_path):
    out = tmp_path / "gpu.json"
    env = dict(os.environ, DEVICE="cpu", GEOMETRY="tiny", OUT=str(out), WHEELS=str(tmp_path / "no-wheels"))
    proc = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu" / "run.sh")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "pytest -m gpu" in log and "skipped" in log  # the gpu tests were collected and skipped on CPU
    result = json.loads(out.read_text())
    s = result["settings"]
    # The settings, at tiny sizes: AdamW, beta 0.04 (a reference model), gradient checkpointing, forced
    # mixed rounds, one warm-up and one timed step of (a) and (b).
    assert (s["optim"], s["beta"], s["gradient_checkpointing"], s["policy"]) == (
        "adamw_torch",
        0.04,
        "on",
        "mixed_rounds",
    )
    assert (s["modes"], s["repeats"], s["warmup"]) == ("ab", 1, 1)
    a, b = (next(x for x in result["steps"] if x["mode"] == m) for m in "ab")
    for step in (a, b):
        assert step["train_flops"] > 0 and step["train_tflops_per_s"] > 0 and step["mfu"] == {}
    assert a["loss_batch_fill"] == 1.0 > a["loss_batch_fill_padded"]
    assert "[gpu] (a) step" in log and "MFU: no peak named (CPU)" in log
