"""Checkpoint markers, the SIGTERM preemption handler and the checkpoint fault hook (ground_r1.checkpoints).
End-to-end SIGTERM/SIGKILL runs are in tests/launchers/test_train_launcher.py and the kill harness."""

from __future__ import annotations

import json
import os
import signal

import pytest

from ground_r1 import checkpoints
from ground_r1.checkpoints import (
    PREEMPTED_EXIT_CODE,
    Preemption,
    TrainingPreempted,
    checkpoint_problems,
    last_complete_checkpoint,
    mark_complete,
    mark_in_progress,
    parse_faults,
)


def complete_folder(root, step):
    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    for name in ("model.safetensors", "optimizer.pt", "rng_state.pth"):
        (folder / name).write_bytes(b"x")
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return folder


def test_a_save_is_bracketed_by_markers_and_an_unrenamed_one_is_never_complete(tmp_path):
    folder = complete_folder(tmp_path, 3)
    mark_in_progress(folder)  # a save starts writing (every file is already there: a kill before the rename)
    assert checkpoint_problems(folder) == ["the save was interrupted (IN_PROGRESS marker, never renamed to COMPLETE)"]
    complete_folder(tmp_path, 2)
    assert last_complete_checkpoint(tmp_path).name == "checkpoint-2"
    mark_complete(folder)
    assert sorted(p.name for p in folder.iterdir() if p.name.isupper()) == ["COMPLETE"]  # renamed, not added
    assert (folder / "COMPLETE").read_text() == "ok\n"
    assert checkpoint_problems(folder) == [] and last_complete_checkpoint(tmp_path).name == "checkpoint-3"
    # Rewriting a complete folder (resumed from an earlier one) drops its stale COMPLETE first.
    mark_in_progress(folder)
    assert not (folder / "COMPLETE").exists() and checkpoint_problems(folder) != []


def test_mark_complete_without_a_bracket_writes_the_marker(tmp_path):
    folder = complete_folder(tmp_path, 1)
    mark_complete(folder)
    assert (folder / "COMPLETE").read_text() == "ok\n" and not (folder / "COMPLETE.tmp").exists()


def test_fault_specs(monkeypatch):
    assert parse_faults("3:weights:kill, 5:marker:term") == [(3, "weights", "kill"), (5, "marker", "term")]
    assert parse_faults("") == []
    with pytest.raises(
        ValueError,
        match=r"entry '3:middle:kill' is not STEP:PHASE:ACTION with PHASE in \('begin', "
        r"'weights', 'marker', 'after'\) and ACTION in \('kill', 'term'\)",
    ):
        parse_faults("3:middle:kill")
    sent = []
    monkeypatch.setattr(checkpoints.os, "kill", lambda pid, sig: sent.append((pid, sig)))
    monkeypatch.setenv(checkpoints.FAULT_ENV, "3:weights:term")
    monkeypatch.setenv(checkpoints.LEGACY_KILL_ENV, "4")  # the older variable = "4:after:kill"
    for step, phase in [(3, "begin"), (3, "weights"), (4, "marker"), (4, "after")]:
        checkpoints.checkpoint_fault(step, phase)
    assert sent == [(os.getpid(), signal.SIGTERM), (os.getpid(), signal.SIGKILL)]


def test_sigterm_sets_the_flag_and_the_ranks_agreement_stops_the_run():
    previous = signal.getsignal(signal.SIGTERM)
    preemption = Preemption()
    preemption.install()
    try:
        assert not preemption.stop_agreed(lambda local: local)  # nothing received yet
        os.kill(os.getpid(), signal.SIGTERM)  # a real signal: the handler runs, the test process lives on
        assert preemption.requested
        assert preemption.stop_agreed(lambda local: local)
    finally:
        preemption.uninstall()
    assert signal.getsignal(signal.SIGTERM) == previous


def test_another_rank_s_sigterm_stops_this_rank_too():
    preemption = Preemption()  # no signal here: the all-reduced flag says another rank got one
    assert preemption.stop_agreed(lambda local: True) and preemption.stopping
    calls = []
    assert preemption.stop_agreed(lambda local: calls.append(local) or False)  # decided: no further collective
    assert calls == []


def test_exit_after_checkpoint_exits_143(tmp_path, caplog):
    with pytest.raises(TrainingPreempted) as info:
        Preemption().exit_after_checkpoint(7, tmp_path / "checkpoint-7")
    assert info.value.code == PREEMPTED_EXIT_CODE == 143 and info.value.step == 7
    assert "stopped by SIGTERM after step 7" in caplog.text


def test_a_second_sigterm_exits_at_once(monkeypatch):
    sent = []
    monkeypatch.setattr(checkpoints.os, "kill", lambda pid, sig: sent.append(sig))
    monkeypatch.setattr(checkpoints.signal, "signal", lambda sig, handler: sent.append(handler))
    preemption = Preemption()
    preemption._on_sigterm(signal.SIGTERM, None)
    assert preemption.requested and sent == []
    preemption._on_sigterm(signal.SIGTERM, None)  # default action restored, then the signal sent again
    assert sent == [signal.SIG_DFL, signal.SIGTERM]


# -- GroundR1Trainer's resume fixes ----------------------------------------------------------------------------


def test_resume_loads_every_weight_and_a_finished_run_trains_no_extra_step(make_trainer, tmp_path):
    """HF's loader skipped the tensors saved under Qwen2.5-VL's checkpoint key names (`model.layers.*`), and HF's
    loop trains one step past max_steps when resumed from the max_steps checkpoint."""
    from safetensors.torch import load_file, save_file

    small = dict(
        max_steps=1,
        save_strategy="steps",
        save_steps=1,
        max_turns=1,
        max_new_tokens_per_turn=8,
        max_completion_length=64,
    )
    first = make_trainer(**small)
    first.train()
    folder = tmp_path / "out" / "checkpoint-1"
    assert (folder / "COMPLETE").is_file()
    # Mark the checkpoint: +1 on a language-model weight stored as "model.layers.0.mlp.down_proj.weight".
    tensors = load_file(folder / "model.safetensors")
    tensors["model.layers.0.mlp.down_proj.weight"] += 1.0
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})

    resumed = make_trainer(**small)
    output = resumed.train(resume_from_checkpoint=str(folder))
    assert output.global_step == 1 and resumed.state.global_step == 1
    assert not (tmp_path / "out" / "checkpoint-2").exists()  # no step past max_steps
    live = resumed.model.model.language_model.layers[0].mlp.down_proj.weight
    assert bool((live.detach() == tensors["model.layers.0.mlp.down_proj.weight"]).all())  # the +1 arrived
