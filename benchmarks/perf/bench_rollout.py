#!/usr/bin/env python
"""Speed and memory of one GRPO step, side by side, in one process: (a) our GroundR1Trainer, (b) TRL's stock
GRPOTrainer single-turn on the same prompts (the cost floor of one phase), (c) the release-style multi-round loop,
and (a) with one of its savings switched off: (n) no vision-feature reuse, (k) no KV cache carried between
rounds, (p) TRL's padded loss batch with the LM head on every position.

    .venv/bin/python benchmarks/perf/bench_rollout.py                       # tiny model, CPU, 3 repeats
    .venv/bin/python benchmarks/perf/bench_rollout.py --geometry 7b --device cuda --questions 2 \\
        --num_generations 8 --max_new_tokens_per_turn 512 --max_turns 5 --max_pixels 401408 --out perf_7b.json

Same model object, same questions (the built-in synthetic data), same N, same per-turn token budget, sampling
settings and beta for every loop. Text is forced through the real `generate` (benchmarks/perf/forced.py): every
decode step runs on the model, a logits processor picks the scripted token (`mixed_rounds`: trajectories finish
in rounds 1, 2 and 3), each turn exactly `--max_new_tokens_per_turn` tokens. (c) is our rollout with its
benchmark-only `RolloutConfig.release_style_*` options on (all N trajectories regenerate every round; every
conversation is re-rendered, re-tokenized and its images re-processed every round) and `generate` without a KV
cache (every decode step re-runs the context and re-encodes every image), as the release's train-mode generate
did. (a) and (c) keep the same turns, a check in the output says so.

Each repeat runs one step of each loop, the order rotated per repeat; `--warmup` untimed steps per loop first.
Figures per step: rollout time (a, c: the whole multi-round rollout; b: TRL's `_generate`), step time (the
optimizer step, from the Trainer's step-begin to step-end callbacks), the loss pass (training_step minus the
rollout and scoring inside it: forward and backward of the loss), generated tokens (kept turns; a round-1 turn
shared by G2 trajectories counts once), decoded tokens (also the discarded ones of (c)), trained tokens
(loss-mask ones), the loss batch (non-pad positions, positions processed, fill; and the fill TRL's padded layout
would have), model FLOPs of the loss pass and MFU against named peaks, peak memory during the step (CPU: peak
RSS, the kernel's high-water mark reset at step begin; CUDA: torch.cuda.max_memory_allocated). Ratios are
computed per repeat and given as min/median/max.

Writes every raw figure to --out (JSON). See benchmarks/perf/README.md for what the figures mean and results.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import io
import json
import logging
import math
import os
import platform
import pstats
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from forced import ForcedScript  # noqa: E402

logger = logging.getLogger("bench_rollout")

MODES = ("a", "b", "c", "n", "k", "p")
MODE_NAMES = {
    "a": "GroundR1Trainer",
    "b": "TRL GRPOTrainer 1-turn",
    "c": "release-style loop",
    "n": "(a), no vision reuse",
    "k": "(a), no KV carry-over",
    "p": "(a), TRL's padded loss",
}
# Named peaks for the MFU of the training forward/backward (`--peak_tflops NAME=TFLOPS`, dense bf16).
H200_PEAKS = {"h200_spec_989": 989.0, "h200_measured_790": 790.0}
# Figures that are positive for every step of every loop (the smoke test checks them).
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
SUMMARY_EXTRA = ("peak_above_step_start_mib", "loss_batch_fill_padded", "loss_s_per_real_position")
CPU_SECONDS = ("rollout_cpu_s", "step_cpu_s", "loss_pass_cpu_s")  # CPU runs only


# -- arguments ------------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    p.add_argument(
        "--geometry",
        choices=("tiny", "3b", "7b"),
        default="tiny",
        help="tiny: the offline test model; 3b/7b: the real sizes, random init (needs a GPU)",
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--dtype", choices=("auto", "fp32", "bf16"), default="auto", help="auto: bf16 on cuda, fp32 on cpu")
    p.add_argument("--num_generations", type=int, default=8, help="N trajectories per question (tiny_cpu: 8)")
    p.add_argument("--g1", type=int, default=2, help="round-1 samples per question (tree: G2 = N / G1)")
    p.add_argument("--questions", type=int, default=2, help="questions per step (tiny_cpu: 2)")
    p.add_argument("--max_new_tokens_per_turn", type=int, default=48, help="per-turn budget (tiny_cpu: 48)")
    p.add_argument("--max_turns", type=int, default=3, help="assistant turns per trajectory (tiny_cpu: 3)")
    p.add_argument(
        "--max_completion_length",
        type=int,
        default=None,
        help="total budget of (a)/(c) (default: max_turns x (per-turn budget + 1024), never binding)",
    )
    p.add_argument("--max_pixels", type=int, default=12544, help="image processor max_pixels (tiny: 12544)")
    p.add_argument("--min_pixels", type=int, default=3136)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--policy", default="mixed_rounds", help="scripted policy of ground_r1.demo.scripted")
    p.add_argument(
        "--modes",
        default="abcnkp",
        help="which loops to run, e.g. 'ab'; 'n': (a) without vision-feature reuse, 'k': (a) without the KV "
        "cache carried from round to round, 'p': (a) with TRL's padded loss batch and LM head on "
        "every position (the 'befores' of issues 8 and 19)",
    )
    p.add_argument("--no_vision_reuse", action="store_true", help="(a) itself re-encodes images every round")
    p.add_argument("--no_kv_reuse", action="store_true", help="(a) itself prefills every context afresh each round")
    p.add_argument("--no_record_logprobs", action="store_true", help="(a)/(c) do not keep sampling log-probs")
    p.add_argument("--optim", default=None, help="HF optimizer name (default: adamw_torch on tiny, sgd on 3b/7b)")
    p.add_argument(
        "--gradient_checkpointing",
        choices=("auto", "on", "off"),
        default="auto",
        help="auto: off on tiny (tiny_cpu.yaml), on for 3b/7b",
    )
    p.add_argument("--learning_rate", type=float, default=1e-5)
    p.add_argument(
        "--beta",
        type=float,
        default=0.0,
        help="KL coefficient of every loop; > 0 keeps one frozen reference model in memory (the release: 0.04)",
    )
    p.add_argument(
        "--loss_batch_layout",
        default="auto",
        choices=("auto", "bucketed", "packed", "padded"),
        help="(a)'s loss batch (config loss_batch_layout); (p) is always 'padded'",
    )
    p.add_argument(
        "--peak_tflops",
        action="append",
        default=[],
        metavar="NAME=TFLOPS",
        help="a peak for the MFU of the training forward/backward (repeatable); --device cuda on an H200 "
        "adds h200_spec_989 and h200_measured_790",
    )
    p.add_argument("--warmup", type=int, default=1, help="untimed steps of each loop before the repeats")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default 1 on --device cpu: steadier timings on a shared machine)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/perf/results/perf.json", help="JSON with every raw figure")
    p.add_argument(
        "--profile",
        default=None,
        metavar="DIR",
        help="after the repeats, profile one more step of (a) (torch profiler + cProfile) into DIR",
    )
    p.add_argument("--profile_tag", default="a", help="file name tag of the profile tables")
    args = p.parse_args(argv)
    problems = []
    if set(args.modes) - set(MODES) or not args.modes:
        problems.append(f"--modes takes letters of {''.join(MODES)}, got {args.modes!r}")
    if args.num_generations < 1 or args.g1 < 1 or args.num_generations % args.g1:
        problems.append(f"--num_generations ({args.num_generations}) must be a positive multiple of --g1 ({args.g1})")
    for name in ("questions", "max_new_tokens_per_turn", "max_turns", "repeats"):
        if getattr(args, name) < 1:
            problems.append(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.geometry != "tiny" and args.device != "cuda":
        problems.append(
            f"--geometry {args.geometry} needs --device cuda (a random {args.geometry} model on CPU "
            "would take hours per step)"
        )
    if args.device == "cuda" and not torch.cuda.is_available():
        problems.append("--device cuda but torch sees no GPU")
    if problems:
        p.error("\n  ".join(problems))
    if args.max_completion_length is None:
        args.max_completion_length = args.max_turns * (args.max_new_tokens_per_turn + 1024)
    if args.optim is None:
        args.optim = "adamw_torch" if args.geometry == "tiny" else "sgd"
    peaks = {}
    for item in args.peak_tflops:
        name, _, value = item.partition("=")
        try:
            peaks[name] = float(value)
        except ValueError:
            p.error(f"--peak_tflops takes NAME=TFLOPS, got {item!r}")
    if args.device == "cuda" and "H200" in torch.cuda.get_device_name():
        peaks = {**H200_PEAKS, **peaks}
    args.peaks = peaks
    return args


# -- measurement helpers ---------------------------------------------------------------------------------------------
class PeakMemory:
    """Peak memory between `reset()` and `read()` in MiB: CUDA allocator peak, or the process's peak RSS (the
    kernel high-water mark VmHWM, reset through /proc/self/clear_refs; a 2 ms sampler where that is refused)."""

    def __init__(self, device: str):
        self.device = device
        self._sampler: threading.Thread | None = None
        self._stop = threading.Event()
        self._peak_kib = 0
        self.method = "torch.cuda.max_memory_allocated" if device == "cuda" else "VmHWM"

    @staticmethod
    def _status_kib(field: str) -> int:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise RuntimeError(f"/proc/self/status has no {field}")

    def reset(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            return
        if self.method == "VmHWM":
            try:
                with open("/proc/self/clear_refs", "w") as fh:
                    fh.write("5")
                return
            except OSError:
                self.method = "VmRSS sampled every 2 ms"
        self._stop.clear()
        self._peak_kib = self._status_kib("VmRSS")

        def sample() -> None:
            while not self._stop.wait(0.002):
                self._peak_kib = max(self._peak_kib, self._status_kib("VmRSS"))

        self._sampler = threading.Thread(target=sample, daemon=True)
        self._sampler.start()

    def current(self) -> float:
        """Memory in use now (MiB): allocated on CUDA, RSS on CPU."""
        if self.device == "cuda":
            return torch.cuda.memory_allocated() / 2**20
        return self._status_kib("VmRSS") / 1024

    def read(self) -> float:
        if self.device == "cuda":
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() / 2**20
        if self.method == "VmHWM":
            return self._status_kib("VmHWM") / 1024
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join()
        return max(self._peak_kib, self._status_kib("VmRSS")) / 1024


def _wrap(obj: Any, name: str, before: Callable[[], None], after: Callable[[Any], None]) -> None:
    """Shadow the bound method `obj.name` with a timed one (instance attribute; the class is untouched)."""
    original = getattr(obj, name)

    def wrapped(*args, **kwargs):
        before()
        out = original(*args, **kwargs)
        after(out)
        return out

    setattr(obj, name, wrapped)


class StepProbe:
    """Times and counts one step of one loop through the trainer's own methods and callbacks."""

    def __init__(self, trainer, mode: str, device: str, n: int, g1: int):
        from transformers import TrainerCallback

        self.mode, self.device, self.n, self.g1 = mode, device, n, g1
        self.memory = PeakMemory(device)
        self.record: dict[str, Any] = {}
        self._t: dict[str, float] = {}
        probe = self

        class _StepTimes(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                probe.memory.reset()
                probe._start_memory = probe.memory.current()
                probe._start("step")

            def on_step_end(self, args, state, control, **kwargs):
                probe._stop("step", "step_s")
                probe.record["peak_memory_mib"] = probe.memory.read()
                probe.record["peak_above_step_start_mib"] = probe.record["peak_memory_mib"] - probe._start_memory

        trainer.add_callback(_StepTimes())
        rollout_method = "_generate" if mode == "b" else "_rollout"
        self.trajectories: list = []
        self.trainer = trainer
        _wrap(trainer, rollout_method, lambda: self._start("rollout"), self._rollout_done)
        _wrap(trainer, "_generate_and_score_completions", lambda: self._start("score"), self._score_done)
        # training_step = _prepare_inputs (the rollout and scoring, at a generation boundary) + loss forward and
        # backward: the loss pass is the difference.
        _wrap(trainer, "training_step", lambda: self._start("train"), self._train_done)
        self._loss_inputs: list[dict] = []
        original_loss = trainer._compute_loss

        def compute_loss(model, inputs):
            out = original_loss(model, inputs)
            self._loss_inputs.append(self._loss_batch_figures(inputs))
            return out

        trainer._compute_loss = compute_loss

    def _now(self) -> float:
        if self.device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    def _start(self, what: str) -> None:
        self._t[what] = self._now()
        self._t[what + "_cpu"] = time.process_time()

    def _stop(self, what: str, key: str, accumulate: bool = False) -> None:
        """Wall seconds into `key`, and the process's CPU seconds into `key` with `_s` -> `_cpu_s` (CPU only: on
        a machine shared with other jobs, CPU time leaves out the time spent waiting for a core)."""
        wall = self._now() - self._t[what]
        cpu = time.process_time() - self._t[what + "_cpu"]
        cpu_key = key[: -len("_s")] + "_cpu_s"
        base = (self.record.get(key, 0.0), self.record.get(cpu_key, 0.0)) if accumulate else (0.0, 0.0)
        self.record[key] = base[0] + wall
        if self.device == "cpu":
            self.record[cpu_key] = base[1] + cpu

    def _rollout_done(self, out) -> None:
        self._stop("rollout", "rollout_s")
        if self.mode == "b":
            completion_ids = out[1]
            self.record["generated_tokens"] = sum(len(c) for c in completion_ids)
            self.record["decoded_tokens"] = self.record["generated_tokens"]
            self.record["rounds"] = 1
            self.record["generate_calls"] = 1
            return
        trajectories, rollout, generator = out
        g2 = self.n // self.g1
        shared = sum(
            len(trajectories[q * self.n + b * g2].turns[0].ids)
            for q in range(len(trajectories) // self.n)
            for b in range(self.g1)
        )
        later = sum(len(turn.ids) for t in trajectories for turn in t.turns[1:])
        self.record["generated_tokens"] = shared + later
        self.record["decoded_tokens"] = generator.generated_tokens
        self.record["rounds"] = rollout.rounds_run
        self.record["generate_calls"] = generator.calls
        self.record["finish_rounds"] = sorted(t.num_turns for t in trajectories)
        self.record["vision"] = dataclasses.asdict(generator.vision_stats)
        # Context tokens served from the previous round's KV cache, and tokens prefilled by continued calls.
        self.record["kv_reused_tokens"] = generator.kv_reused_tokens  # a fresh generator per rollout
        self.record["kv_prefilled_tokens"] = generator.kv_prefilled_tokens
        self.trajectories = trajectories

    def _score_done(self, out) -> None:
        self._stop("score", "rollout_and_scoring_s", accumulate=True)
        mask = out["completion_mask"]
        if out.get("tool_mask") is not None:
            mask = mask * out["tool_mask"]
        self.record["trained_tokens"] = int(mask.sum().item())

    def _train_done(self, out) -> None:
        self._stop("train", "training_step_s", accumulate=True)

    def _loss_batch_figures(self, inputs: dict) -> dict[str, int]:
        """The loss pass's batch: positions holding tokens (`real`), positions processed (the layout's, or TRL's
        [rows x (prompt + completion width)]), what TRL's padded layout would process, and image patch rows."""
        real = int(inputs["prompt_mask"].sum().item() + inputs["completion_mask"].sum().item())
        padded = inputs["prompt_mask"].numel() + inputs["completion_mask"].numel()
        batch = getattr(self.trainer, "last_loss_batch", None)
        pixels = inputs.get("pixel_values")
        return {
            "real": real,
            "processed": batch.positions if batch is not None else padded,
            "padded": padded,
            "forwards": len(batch.forwards) if batch is not None else 1,
            "patch_rows": int(pixels.shape[0]) if pixels is not None else 0,
        }

    def take(self) -> dict[str, Any]:
        rec, self.record = self.record, {}
        passes, self._loss_inputs = self._loss_inputs, []
        rec["generated_tokens_per_s"] = rec["generated_tokens"] / rec["rollout_s"]
        rec["trained_tokens_per_s"] = rec["trained_tokens"] / rec["step_s"]
        # The loss pass: forward and backward of every micro-batch of the step (the scoring part excluded).
        rec["loss_pass_s"] = rec["training_step_s"] - rec["rollout_and_scoring_s"]
        totals = {k: sum(p[k] for p in passes) for k in ("real", "processed", "padded", "forwards", "patch_rows")}
        rec["loss_real_positions"] = totals["real"]
        rec["loss_batch_positions"] = totals["processed"]
        rec["loss_batch_forwards"] = totals["forwards"]
        rec["loss_batch_fill"] = totals["real"] / totals["processed"]
        rec["loss_batch_fill_padded"] = totals["real"] / totals["padded"]  # TRL's layout of the same batch
        rec["loss_patch_rows"] = totals["patch_rows"]
        rec["loss_s_per_real_position"] = rec["loss_pass_s"] / totals["real"]
        if "training_step_cpu_s" in rec:
            rec["loss_pass_cpu_s"] = rec["training_step_cpu_s"] - rec["rollout_and_scoring_cpu_s"]
        return rec


@contextlib.contextmanager
def forced_generate(model, make_processor: Callable[[torch.Tensor], Any]):
    """(b): every `model.generate` call (TRL's own) gets the forcing logits processor; undone afterwards."""
    original = model.generate

    def generate(*args, **kwargs):
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        kwargs["logits_processor"] = make_processor(input_ids)
        return original(*args, **kwargs)

    model.generate = generate
    try:
        yield
    finally:
        del model.generate


# -- building the three loops -----------------------------------------------------------------------------------------
def build_model(args, tiny_dir: Path, processor):
    from ground_r1.models.loading import choose_attention, freeze_vision_tower, load_model, resolve_dtype

    if args.dtype == "auto":
        dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    else:
        dtype = resolve_dtype(args.dtype)
    if args.geometry == "tiny":
        model = load_model(tiny_dir, dtype=dtype, attn_implementation="sdpa").to(args.device)
    else:
        from ground_r1.demo.tiny import GEOMETRIES
        from ground_r1.demo.tiny import build_model as build_random

        previous = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            with torch.device(args.device):
                model = build_random(processor.tokenizer, GEOMETRIES[args.geometry], args.seed)
        finally:
            torch.set_default_dtype(previous)
        attn = choose_attention("auto")
        if attn != "sdpa" and hasattr(model, "set_attn_implementation"):
            model.set_attn_implementation(attn)
    freeze_vision_tower(model)  # SPEC §5, as every preset
    return model


def load_questions(args) -> list[dict]:
    from ground_r1.data.records import load_viscot_records
    from ground_r1.demo.synthetic import ensure_default_dataset

    folder = ensure_default_dataset(num_train=512, num_eval=64)  # the CLI's default synthetic data
    loaded = load_viscot_records(
        folder / "train.jsonl",
        image_root=folder,
        min_pixels=args.min_pixels,
        max_pixels=args.max_pixels,
        limit=args.questions,
    )
    if len(loaded.records) < args.questions:
        raise ValueError(f"asked for {args.questions} questions, the synthetic data has {len(loaded.records)}")
    return loaded.records


def common_settings(args, out_dir: str) -> dict:
    on_gpu = args.device == "cuda"
    bf16 = on_gpu and args.dtype != "fp32"
    gc = {"auto": args.geometry != "tiny", "on": True, "off": False}[args.gradient_checkpointing]
    return dict(
        output_dir=out_dir,
        per_device_train_batch_size=args.questions * args.num_generations,
        num_generations=args.num_generations,
        max_steps=1,
        beta=args.beta,
        loss_type="grpo",
        num_iterations=1,
        scale_rewards="group",
        learning_rate=args.learning_rate,
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_grad_norm=1.0,
        optim=args.optim,
        temperature=1.0,
        top_k=50,
        top_p=1.0,
        repetition_penalty=1.0,
        remove_unused_columns=False,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        use_cpu=not on_gpu,
        bf16=bf16,
        gradient_checkpointing=gc,
        dataloader_num_workers=0,
        disable_tqdm=True,
        seed=args.seed,
    )


def build_trainers(args, model, processor, records: list[dict], script: ForcedScript, out_dir: str) -> dict:
    from datasets import Dataset
    from transformers import PrinterCallback, ProgressCallback
    from trl import GRPOConfig, GRPOTrainer

    from ground_r1.config import GroundR1Config
    from ground_r1.data.images import load_image
    from ground_r1.data.records import records_to_dataset
    from ground_r1.prompt import grounding_text
    from ground_r1.rewards.registry import build_registry
    from ground_r1.rewards.trl_functions import format_reward, make_accuracy_reward
    from ground_r1.rollout.generation import HFGenerator
    from ground_r1.trainer.grpo_trainer import GroundR1Trainer

    budget = args.max_new_tokens_per_turn
    rewards = [format_reward, make_accuracy_reward(build_registry())]
    common = common_settings(args, out_dir)
    ours = dict(
        common,
        num_first_round_samples=args.g1,
        max_turns=args.max_turns,
        max_new_tokens_per_turn=budget,
        max_completion_length=args.max_completion_length,
        min_pixels=args.min_pixels,
        max_pixels=args.max_pixels,
        record_sampling_logprobs=not args.no_record_logprobs,
        loss_batch_layout=args.loss_batch_layout,
    )

    def ground_trainer(release_style: bool, reuse: bool, loss_batch_layout: str | None = None, kv: bool = True):

        class BenchGroundR1Trainer(GroundR1Trainer):
            def _make_generator(self, model):
                return HFGenerator(
                    model,
                    self.codec,
                    record_logprobs=self.args.record_sampling_logprobs,
                    reuse_vision_features=reuse,
                    reuse_kv_cache=kv,
                    use_cache=not release_style,
                    extra_generate_kwargs=script.for_requests(budget),
                )

        settings = dict(ours, loss_batch_layout=loss_batch_layout or ours["loss_batch_layout"])
        with shared_reference(reference):
            trainer = BenchGroundR1Trainer(
                model=model,
                reward_funcs=rewards,
                args=GroundR1Config(**settings),
                train_dataset=records_to_dataset(records),
                processing_class=processor,
            )
        if release_style:
            trainer.rollout_config = dataclasses.replace(
                trainer.rollout_config, release_style_regenerate_all=True, release_style_retokenize=True
            )
        return trainer

    # beta > 0: one frozen reference (the policy as it is now) in memory, shared by every loop, as the release
    # keeps one per process; TRL would otherwise load one per trainer from the checkpoint path.
    reference = _frozen_copy(model) if args.beta != 0.0 else None
    trainers = {}
    if "a" in args.modes:
        trainers["a"] = ground_trainer(release_style=False, reuse=not args.no_vision_reuse, kv=not args.no_kv_reuse)
    if "c" in args.modes:
        trainers["c"] = ground_trainer(release_style=True, reuse=False)
    if "n" in args.modes:
        trainers["n"] = ground_trainer(release_style=False, reuse=False)
    if "k" in args.modes:
        trainers["k"] = ground_trainer(release_style=False, reuse=not args.no_vision_reuse, kv=False)
    if "p" in args.modes:
        trainers["p"] = ground_trainer(
            release_style=False, reuse=not args.no_vision_reuse, loss_batch_layout="padded", kv=not args.no_kv_reuse
        )
    if "b" in args.modes:
        # The same first user turn as ours (image, then the release template with the processor's input size).
        from ground_r1.rollout.conversation import ConversationCodec

        codec = ConversationCodec(processor)
        rows = []
        for r in records:
            image = load_image(r["image"])
            w, h = codec.encode_images([image])[0].size
            rows.append(
                {
                    "prompt": [{"role": "user", "content": grounding_text(r["problem"], w, h)}],
                    "image": image,
                    "solution": r["solution"],
                    "dataset": r["dataset"],
                }
            )
        config = GRPOConfig(**common, max_completion_length=budget, chat_template_kwargs={"add_vision_id": True})
        with shared_reference(reference):
            trainers["b"] = GRPOTrainer(
                model=model,
                reward_funcs=rewards,
                args=config,
                train_dataset=Dataset.from_list(rows),
                processing_class=processor,
            )
    for trainer in trainers.values():
        for cb in (PrinterCallback, ProgressCallback):
            trainer.remove_callback(cb)
    return trainers


def _frozen_copy(model):
    import copy

    reference = copy.deepcopy(model).eval()
    reference.requires_grad_(False)
    return reference


@contextlib.contextmanager
def shared_reference(reference):
    """While a trainer is built, TRL's reference-model loader returns `reference` (None: left alone)."""
    if reference is None:
        yield
        return
    from trl.trainer import grpo_trainer

    original = grpo_trainer.create_model_from_path
    grpo_trainer.create_model_from_path = lambda *args, **kwargs: reference
    try:
        yield
    finally:
        grpo_trainer.create_model_from_path = original


def run_step(mode: str, trainer, script: ForcedScript, args) -> None:
    ctx = contextlib.nullcontext()
    if mode == "b":
        ctx = forced_generate(trainer.model, script.for_single_turn(args.num_generations, args.max_new_tokens_per_turn))
    with ctx:
        trainer.train()


# -- summary -------------------------------------------------------------------------------------------------------------
def spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def summarise(steps: list[dict], modes: str) -> tuple[dict, dict]:
    by_mode = {m: [s for s in steps if s["mode"] == m] for m in modes}
    summary = {
        m: {
            f: spread([s[f] for s in rows])
            for f in (*FIGURES, *SUMMARY_EXTRA, *CPU_SECONDS)
            if all(f in s for s in rows)
        }
        for m, rows in by_mode.items()
        if rows
    }
    ratios: dict[str, dict] = {}
    repeats = sorted({s["repeat"] for s in steps})

    def per_repeat(num: str, den: str, fn: Callable[[dict], float], name: str, meaning: str) -> None:
        if num not in by_mode or den not in by_mode:
            return
        values = []
        for r in repeats:
            a = next(s for s in by_mode[num] if s["repeat"] == r)
            b = next(s for s in by_mode[den] if s["repeat"] == r)
            values.append(fn(a) / fn(b))
        ratios[name] = {"meaning": meaning, "values": values, **spread(values)}

    per_token = lambda s: s["rollout_s"] / s["generated_tokens"]  # noqa: E731
    per_trained = lambda s: s["step_s"] / s["trained_tokens"]  # noqa: E731
    per_repeat(
        "a",
        "b",
        per_token,
        "a/b rollout s per generated token",
        "generation cost of our multi-round rollout per kept token, relative to TRL's single turn",
    )
    per_repeat("a", "b", per_trained, "a/b step s per trained token", "whole optimizer step per loss token")
    per_repeat(
        "a",
        "b",
        lambda s: s["loss_s_per_real_position"],
        "a/b loss s per real position",
        "loss forward/backward seconds per non-pad position of the loss batch (like with like)",
    )
    if all("step_cpu_s" in s for s in steps):  # CPU: the same ratios in CPU seconds of the process
        per_repeat(
            "a",
            "b",
            lambda s: s["rollout_cpu_s"] / s["generated_tokens"],
            "a/b rollout cpu-s per gen token",
            "as 'a/b rollout s per generated token', in process CPU seconds (waits for a shared core left out)",
        )
        per_repeat("a", "b", lambda s: s["step_cpu_s"] / s["trained_tokens"], "a/b step cpu-s per trained token", "")
        per_repeat(
            "a", "b", lambda s: s["loss_pass_cpu_s"] / s["loss_real_positions"], "a/b loss cpu-s per real position", ""
        )
        per_repeat("p", "a", lambda s: s["loss_pass_cpu_s"], "p/a loss-pass cpu-s", "")
        per_repeat("k", "a", lambda s: s["rollout_cpu_s"], "k/a rollout cpu-s", "")
    per_repeat(
        "p",
        "a",
        lambda s: s["loss_pass_s"],
        "p/a loss-pass s",
        "TRL's padded loss batch and full-position LM head over ours (same trajectories)",
    )
    per_repeat("p", "a", lambda s: s["step_s"], "p/a step s", "")
    per_repeat("c", "a", lambda s: s["rollout_s"], "c/a rollout s", "release-style rollout time over ours (same turns)")
    per_repeat("c", "a", lambda s: s["step_s"], "c/a step s", "release-style step time over ours (same turns)")
    per_repeat("c", "a", lambda s: s["peak_memory_mib"], "c/a peak memory", "")
    per_repeat("a", "b", lambda s: s["peak_memory_mib"], "a/b peak memory", "")
    per_repeat("n", "a", lambda s: s["rollout_s"], "n/a rollout s", "rollout without vision reuse over with it")
    per_repeat("n", "a", lambda s: s["step_s"], "n/a step s", "")
    per_repeat("k", "a", lambda s: s["rollout_s"], "k/a rollout s", "rollout without the KV carry-over over with it")
    return summary, ratios


def format_table(summary: dict, ratios: dict, steps: list[dict], device: str) -> str:
    cols = [
        ("rollout s", "rollout_s", "{:.3f}"),
        ("step s", "step_s", "{:.3f}"),
        ("gen tok", "generated_tokens", "{:.0f}"),
        ("decoded", "decoded_tokens", "{:.0f}"),
        ("trained tok", "trained_tokens", "{:.0f}"),
        ("gen tok/s", "generated_tokens_per_s", "{:.0f}"),
        ("trained tok/s", "trained_tokens_per_s", "{:.0f}"),
        ("loss s", "loss_pass_s", "{:.3f}"),
        ("loss fill", "loss_batch_fill", "{:.3f}"),
        ("peak MiB", "peak_memory_mib", "{:.0f}"),
    ]
    if device == "cuda":  # on CPU the allocator keeps freed pages, so RSS above the step's start says little
        cols.append(("peak-start MiB", "peak_above_step_start_mib", "{:.0f}"))
    lines = ["medians over repeats"]
    header = f"{'loop':<34}" + "".join(f"{c[0]:>14}" for c in cols)
    lines += [header, "-" * len(header)]
    for mode, figs in summary.items():
        rounds = next(s.get("rounds") for s in steps if s["mode"] == mode)
        label = f"({mode}) {MODE_NAMES[mode]} [{rounds} rnd]"
        lines.append(f"{label:<34}" + "".join(f"{fmt.format(figs[key]['median']):>14}" for _, key, fmt in cols))
    lines += ["", f"{'ratio':<44}{'min':>10}{'median':>10}{'max':>10}"]
    for name, r in ratios.items():
        lines.append(f"{name:<44}{r['min']:>10.3f}{r['median']:>10.3f}{r['max']:>10.3f}")
    return "\n".join(lines)


# -- model FLOPs of the training forward/backward ---------------------------------------------------------------------
def parameter_counts(model) -> dict[str, int]:
    """Trainable language-model parameters, and the frozen vision tower's (blocks and patch embedding, which see
    every patch row; the merger, which sees the merged rows)."""
    from ground_r1.models.loading import vision_tower

    visual = vision_tower(model)
    in_tower = {id(p) for p in visual.parameters()}
    merger = getattr(visual, "merger", None)
    in_merger = {id(p) for p in merger.parameters()} if merger is not None else set()
    return {
        "trainable_lm": sum(p.numel() for p in model.parameters() if p.requires_grad and id(p) not in in_tower),
        "frozen_tower": sum(p.numel() for p in visual.parameters() if not p.requires_grad and id(p) not in in_merger),
        "frozen_merger": sum(
            p.numel() for p in (merger.parameters() if merger is not None else []) if not p.requires_grad
        ),
        "merge_unit": int(getattr(visual, "spatial_merge_size", 1)) ** 2,
    }


def training_flops(counts: dict[str, int], step: dict) -> float:
    """Model FLOPs of the loss pass (issue 19's definition): 6 x trainable LM parameters x non-pad positions of
    the loss batch + 2 x frozen parameters x the positions they process (vision patch rows; merged rows for the
    merger). Attention scores, gradient-checkpointing recomputation and padding are not counted: padding is
    work, not useful work. The LM head is counted at every non-pad position, as 6N does."""
    rows = step["loss_patch_rows"]
    frozen = counts["frozen_tower"] * rows + counts["frozen_merger"] * rows / counts["merge_unit"]
    return 6.0 * counts["trainable_lm"] * step["loss_real_positions"] + 2.0 * frozen


def add_flop_figures(step: dict, counts: dict[str, int], peaks: dict[str, float]) -> None:
    step["train_flops"] = training_flops(counts, step)
    step["train_tflops_per_s"] = step["train_flops"] / step["loss_pass_s"] / 1e12
    step["mfu"] = {name: step["train_tflops_per_s"] / peak for name, peak in peaks.items()}


# -- profiling ---------------------------------------------------------------------------------------------------------
def profile_step(trainer, script, args, records: list[dict], out_dir: Path) -> dict[str, str]:
    """One more step of (a) under the torch profiler (op tables) and cProfile (Python functions), and one more
    rollout alone under cProfile (the part the vision-feature reuse changes)."""
    from torch.profiler import ProfilerActivity, profile

    from ground_r1.data.images import load_image
    from ground_r1.rollout.runner import RolloutQuestion

    out_dir.mkdir(parents=True, exist_ok=True)
    tag = args.profile_tag
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device == "cuda" else [])
    with profile(activities=activities) as prof:
        run_step("a", trainer, script, args)
    sort = "cuda_time_total" if args.device == "cuda" else "cpu_time_total"
    tables = {
        f"torch_{tag}_step_by_total.txt": prof.key_averages().table(sort_by=sort, row_limit=15),
        f"torch_{tag}_step_by_self.txt": prof.key_averages().table(sort_by="self_" + sort, row_limit=15),
    }

    def cprofiled(fn: Callable[[], Any]) -> str:
        profiler = cProfile.Profile()
        profiler.enable()
        fn()
        profiler.disable()
        buf = io.StringIO()
        stats = pstats.Stats(profiler, stream=buf).sort_stats("cumulative")
        stats.print_stats(15)
        buf.write("\nThe vision tower (every call of get_image_features, by the model or by the vision cache):\n")
        stats.print_stats("get_image_features")
        return buf.getvalue()

    questions = [RolloutQuestion(r["problem"], load_image(r["image"])) for r in records]
    tables[f"cprofile_{tag}_step.txt"] = cprofiled(lambda: run_step("a", trainer, script, args))
    tables[f"cprofile_{tag}_rollout.txt"] = cprofiled(lambda: trainer._rollout(questions, "train"))
    files = {}
    for name, text in tables.items():
        (out_dir / name).write_text(text.rstrip() + "\n")
        files[name] = str(out_dir / name)
    return files


# -- main ----------------------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(message)s", datefmt="%H:%M:%S")
    for noisy in ("transformers", "datasets", "ground_r1", "trl", "accelerate", "httpx"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    import transformers
    import trl

    transformers.logging.set_verbosity_error()
    from ground_r1.models.loading import load_processor
    from ground_r1.demo.tiny import ensure_tiny_model
    from ground_r1.rollout.conversation import ConversationCodec

    if args.threads is not None or args.device == "cpu":
        torch.set_num_threads(args.threads or 1)
    torch.manual_seed(args.seed)
    tiny_dir = ensure_tiny_model()
    processor = load_processor(tiny_dir, min_pixels=args.min_pixels, max_pixels=args.max_pixels)
    script = ForcedScript(ConversationCodec(processor), args.policy)
    need = script.min_budget(args.num_generations, args.max_turns)
    if args.max_new_tokens_per_turn < need:
        raise SystemExit(
            f"--max_new_tokens_per_turn {args.max_new_tokens_per_turn} is too small for the scripted "
            f"turns of {args.policy!r}: give at least {need}"
        )
    logger.info("building the %s model on %s", args.geometry, args.device)
    model = build_model(args, tiny_dir, processor)
    records = load_questions(args)
    with tempfile.TemporaryDirectory(prefix="bench_rollout-") as out_dir:
        trainers = build_trainers(args, model, processor, records, script, out_dir)
        probes = {m: StepProbe(t, m, args.device, args.num_generations, args.g1) for m, t in trainers.items()}
        modes = [m for m in MODES if m in trainers]
        logger.info("warm-up: %d step(s) of each loop (%s)", args.warmup, ", ".join(modes))
        for _ in range(args.warmup):
            for m in modes:
                run_step(m, trainers[m], script, args)
                probes[m].take()
        counts = parameter_counts(model)
        steps: list[dict] = []
        for r in range(args.repeats):
            order = modes[r % len(modes) :] + modes[: r % len(modes)]
            for m in order:
                run_step(m, trainers[m], script, args)
                steps.append({"mode": m, "repeat": r, **probes[m].take()})
                add_flop_figures(steps[-1], counts, args.peaks)
                logger.info(
                    "repeat %d (%s): rollout %.3f s, step %.3f s", r, m, steps[-1]["rollout_s"], steps[-1]["step_s"]
                )
        checks: dict[str, Any] = {}
        if "a" in probes and "c" in probes:
            same = [
                (x.completion_ids, x.completion_mask) == (y.completion_ids, y.completion_mask)
                for x, y in zip(probes["a"].trajectories, probes["c"].trajectories)
            ]
            checks["a_c_same_trajectories"] = bool(same) and all(same)
        if "a" in probes:
            finish = next(s["finish_rounds"] for s in steps if s["mode"] == "a")
            checks["a_finish_rounds"] = {str(k): finish.count(k) for k in sorted(set(finish))}
            a_steps = [s for s in steps if s["mode"] == "a"]
            # The same loss batch in TRL's padded layout (before) and in (a)'s (after).
            checks["a_loss_batch_fill_before_after"] = [
                round(statistics.median(s["loss_batch_fill_padded"] for s in a_steps), 3),
                round(statistics.median(s["loss_batch_fill"] for s in a_steps), 3),
            ]
        profile_files = (
            profile_step(trainers["a"], script, args, records, Path(args.profile))
            if args.profile and "a" in trainers
            else {}
        )

    summary, ratios = summarise(steps, "".join(modes))
    table = format_table(summary, ratios, steps, args.device)
    print(table)
    for name, value in checks.items():
        print(f"check {name}: {value}")
    result = {
        "command": " ".join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])]),
        "settings": vars(args),
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "trl": trl.__version__,
            "device": torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu",
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "memory_method": probes[modes[0]].memory.method,
        },
        "modes": {m: MODE_NAMES[m] for m in modes},
        "parameter_counts": counts,
        "mfu_peaks_tflops": args.peaks,
        "steps": steps,
        "summary": summary,
        "ratios": ratios,
        "checks": checks,
        "profile_files": profile_files,
        "table": table,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    bad = [f"{s['mode']}:{k}" for s in steps for k in FIGURES if not (math.isfinite(s[k]) and s[k] > 0)]
    if bad:
        logger.error("non-positive or non-finite figures: %s", bad)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
