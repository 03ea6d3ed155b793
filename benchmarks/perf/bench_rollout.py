#!/usr/bin/env python
"""Speed and memory of one GRPO step, side by side, in one process: (a) our GroundR1Trainer, (b) TRL's stock
GRPOTrainer single-turn on the same prompts (the cost floor of one phase), (c) the release-style multi-round loop.

    .venv/bin/python benchmarks/perf/bench_rollout.py                       # tiny model, CPU, 3 repeats (~1 min)
    .venv/bin/python benchmarks/perf/bench_rollout.py --geometry 7b --device cuda --questions 2 \\
        --num_generations 8 --max_new_tokens_per_turn 512 --max_turns 5 --max_pixels 401408 --out perf_7b.json

Same model object, same questions (the built-in synthetic data), same N, same per-turn token budget and sampling
settings for all three. Text is forced through the real `generate` (benchmarks/perf/forced.py): every decode
step runs on the model, a logits processor picks the scripted token (`mixed_rounds`: trajectories finish in
rounds 1, 2 and 3), each turn exactly `--max_new_tokens_per_turn` tokens. (c) is our rollout with its
benchmark-only `RolloutConfig.release_style_*` options on (all N trajectories regenerate every round; every
conversation is re-rendered, re-tokenized and its images re-processed every round) and `generate` without a KV
cache (every decode step re-runs the context and re-encodes every image), as the release's train-mode generate
did. (a) and (c) keep the same turns, a check in the output says so.

Each repeat runs one step of each loop, the order rotated per repeat; one untimed warm-up step per loop first.
Figures per step: rollout time (a, c: the whole multi-round rollout; b: TRL's `_generate`), step time (the
optimizer step, from the Trainer's step-begin to step-end callbacks), generated tokens (kept turns; a round-1
turn shared by G2 trajectories counts once), decoded tokens (also the discarded ones of (c)), trained tokens
(loss-mask ones), peak memory during the step (CPU: peak RSS, the kernel's high-water mark reset at step begin;
CUDA: torch.cuda.max_memory_allocated). Ratios are computed per repeat and given as min/median/max.

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

MODES = ("a", "b", "c", "n")
MODE_NAMES = {"a": "GroundR1Trainer", "b": "TRL GRPOTrainer 1-turn", "c": "release-style loop",
              "n": "(a), no vision reuse"}
# Figures that are positive for every step of every loop (the smoke test checks them).
FIGURES = ("rollout_s", "step_s", "generated_tokens", "decoded_tokens", "trained_tokens",
           "generated_tokens_per_s", "trained_tokens_per_s", "peak_memory_mib")


# -- arguments ------------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--geometry", choices=("tiny", "3b", "7b"), default="tiny",
                   help="tiny: the offline test model; 3b/7b: the real sizes, random init (needs a GPU)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--dtype", choices=("auto", "fp32", "bf16"), default="auto", help="auto: bf16 on cuda, fp32 on cpu")
    p.add_argument("--num_generations", type=int, default=8, help="N trajectories per question (tiny_cpu: 8)")
    p.add_argument("--g1", type=int, default=2, help="round-1 samples per question (tree: G2 = N / G1)")
    p.add_argument("--questions", type=int, default=2, help="questions per step (tiny_cpu: 2)")
    p.add_argument("--max_new_tokens_per_turn", type=int, default=48, help="per-turn budget (tiny_cpu: 48)")
    p.add_argument("--max_turns", type=int, default=3, help="assistant turns per trajectory (tiny_cpu: 3)")
    p.add_argument("--max_completion_length", type=int, default=None,
                   help="total budget of (a)/(c) (default: max_turns x (per-turn budget + 1024), never binding)")
    p.add_argument("--max_pixels", type=int, default=12544, help="image processor max_pixels (tiny: 12544)")
    p.add_argument("--min_pixels", type=int, default=3136)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--policy", default="mixed_rounds", help="scripted policy of ground_r1.rollout.scripted")
    p.add_argument("--modes", default="abcn",
                   help="which loops to run, e.g. 'ab'; 'n' adds (a) without vision-feature reuse (the 'before')")
    p.add_argument("--no_vision_reuse", action="store_true", help="(a) itself re-encodes images every round")
    p.add_argument("--no_record_logprobs", action="store_true", help="(a)/(c) do not keep sampling log-probs")
    p.add_argument("--optim", default=None, help="HF optimizer name (default: adamw_torch on tiny, sgd on 3b/7b)")
    p.add_argument("--gradient_checkpointing", choices=("auto", "on", "off"), default="auto",
                   help="auto: off on tiny (tiny_cpu.yaml), on for 3b/7b")
    p.add_argument("--learning_rate", type=float, default=1e-5)
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default 1 on --device cpu: steadier timings on a shared machine)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/perf/results/perf.json", help="JSON with every raw figure")
    p.add_argument("--profile", default=None, metavar="DIR",
                   help="after the repeats, profile one more step of (a) (torch profiler + cProfile) into DIR")
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
        problems.append(f"--geometry {args.geometry} needs --device cuda (a random {args.geometry} model on CPU "
                        "would take hours per step)")
    if args.device == "cuda" and not torch.cuda.is_available():
        problems.append("--device cuda but torch sees no GPU")
    if problems:
        p.error("\n  ".join(problems))
    if args.max_completion_length is None:
        args.max_completion_length = args.max_turns * (args.max_new_tokens_per_turn + 1024)
    if args.optim is None:
        args.optim = "adamw_torch" if args.geometry == "tiny" else "sgd"
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
                probe._t["step"] = probe._now()

            def on_step_end(self, args, state, control, **kwargs):
                probe.record["step_s"] = probe._now() - probe._t["step"]
                probe.record["peak_memory_mib"] = probe.memory.read()
                probe.record["peak_above_step_start_mib"] = probe.record["peak_memory_mib"] - probe._start_memory

        trainer.add_callback(_StepTimes())
        rollout_method = "_generate" if mode == "b" else "_rollout"
        self.trajectories: list = []
        _wrap(trainer, rollout_method, lambda: self._start("rollout"), self._rollout_done)
        _wrap(trainer, "_generate_and_score_completions", lambda: self._start("score"), self._score_done)

    def _now(self) -> float:
        if self.device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    def _start(self, what: str) -> None:
        self._t[what] = self._now()

    def _rollout_done(self, out) -> None:
        self.record["rollout_s"] = self._now() - self._t["rollout"]
        if self.mode == "b":
            completion_ids = out[1]
            self.record["generated_tokens"] = sum(len(c) for c in completion_ids)
            self.record["decoded_tokens"] = self.record["generated_tokens"]
            self.record["rounds"] = 1
            self.record["generate_calls"] = 1
            return
        trajectories, rollout, generator = out
        g2 = self.n // self.g1
        shared = sum(len(trajectories[q * self.n + b * g2].turns[0].ids)
                     for q in range(len(trajectories) // self.n) for b in range(self.g1))
        later = sum(len(turn.ids) for t in trajectories for turn in t.turns[1:])
        self.record["generated_tokens"] = shared + later
        self.record["decoded_tokens"] = generator.generated_tokens
        self.record["rounds"] = rollout.rounds_run
        self.record["generate_calls"] = generator.calls
        self.record["finish_rounds"] = sorted(t.num_turns for t in trajectories)
        self.record["vision"] = dataclasses.asdict(generator.vision_stats)
        self.trajectories = trajectories

    def _score_done(self, out) -> None:
        self.record["rollout_and_scoring_s"] = self._now() - self._t["score"]
        mask = out["completion_mask"]
        if out.get("tool_mask") is not None:
            mask = mask * out["tool_mask"]
        self.record["trained_tokens"] = int(mask.sum().item())
        # The loss forward's batch: positions that hold tokens, of all [rows x (prompt + completion width)].
        real = int(out["prompt_mask"].sum().item() + out["completion_mask"].sum().item())
        total = out["prompt_mask"].numel() + out["completion_mask"].numel()
        self.record["loss_batch_positions"] = total
        self.record["loss_batch_fill"] = real / total

    def take(self) -> dict[str, Any]:
        rec, self.record = self.record, {}
        rec["generated_tokens_per_s"] = rec["generated_tokens"] / rec["rollout_s"]
        rec["trained_tokens_per_s"] = rec["trained_tokens"] / rec["step_s"]
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
        from ground_r1.models.tiny import GEOMETRIES
        from ground_r1.models.tiny import build_model as build_random

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
    from ground_r1.data.synthetic import ensure_default_dataset

    folder = ensure_default_dataset(num_train=512, num_eval=64)  # the CLI's default synthetic data
    loaded = load_viscot_records(folder / "train.jsonl", image_root=folder, min_pixels=args.min_pixels,
                                 max_pixels=args.max_pixels, limit=args.questions)
    if len(loaded.records) < args.questions:
        raise ValueError(f"asked for {args.questions} questions, the synthetic data has {len(loaded.records)}")
    return loaded.records


def common_settings(args, out_dir: str) -> dict:
    on_gpu = args.device == "cuda"
    bf16 = on_gpu and args.dtype != "fp32"
    gc = {"auto": args.geometry != "tiny", "on": True, "off": False}[args.gradient_checkpointing]
    return dict(
        output_dir=out_dir, per_device_train_batch_size=args.questions * args.num_generations,
        num_generations=args.num_generations, max_steps=1, beta=0.0, loss_type="grpo", num_iterations=1,
        scale_rewards="group", learning_rate=args.learning_rate, lr_scheduler_type="constant", weight_decay=0.0,
        max_grad_norm=1.0, optim=args.optim, temperature=1.0, top_k=50, top_p=1.0, repetition_penalty=1.0,
        remove_unused_columns=False, logging_steps=1, report_to=[], save_strategy="no", use_cpu=not on_gpu,
        bf16=bf16, gradient_checkpointing=gc, dataloader_num_workers=0, disable_tqdm=True, seed=args.seed,
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
    ours = dict(common, num_first_round_samples=args.g1, max_turns=args.max_turns, max_new_tokens_per_turn=budget,
                max_completion_length=args.max_completion_length, min_pixels=args.min_pixels,
                max_pixels=args.max_pixels, record_sampling_logprobs=not args.no_record_logprobs)

    def ground_trainer(release_style: bool, reuse: bool):

        class BenchGroundR1Trainer(GroundR1Trainer):
            def _make_generator(self, model):
                return HFGenerator(model, self.codec, record_logprobs=self.args.record_sampling_logprobs,
                                   reuse_vision_features=reuse, use_cache=not release_style,
                                   extra_generate_kwargs=script.for_requests(budget))

        trainer = BenchGroundR1Trainer(model=model, reward_funcs=rewards, args=GroundR1Config(**ours),
                                       train_dataset=records_to_dataset(records), processing_class=processor)
        if release_style:
            trainer.rollout_config = dataclasses.replace(
                trainer.rollout_config, release_style_regenerate_all=True, release_style_retokenize=True)
        return trainer

    trainers = {}
    if "a" in args.modes:
        trainers["a"] = ground_trainer(release_style=False, reuse=not args.no_vision_reuse)
    if "c" in args.modes:
        trainers["c"] = ground_trainer(release_style=True, reuse=False)
    if "n" in args.modes:
        trainers["n"] = ground_trainer(release_style=False, reuse=False)
    if "b" in args.modes:
        # The same first user turn as ours (image, then the release template with the processor's input size).
        from ground_r1.rollout.conversation import ConversationCodec

        codec = ConversationCodec(processor)
        rows = []
        for r in records:
            image = load_image(r["image"])
            w, h = codec.encode_images([image])[0].size
            rows.append({"prompt": [{"role": "user", "content": grounding_text(r["problem"], w, h)}],
                         "image": image, "solution": r["solution"], "dataset": r["dataset"]})
        config = GRPOConfig(**common, max_completion_length=budget, chat_template_kwargs={"add_vision_id": True})
        trainers["b"] = GRPOTrainer(model=model, reward_funcs=rewards, args=config,
                                    train_dataset=Dataset.from_list(rows), processing_class=processor)
    for trainer in trainers.values():
        for cb in (PrinterCallback, ProgressCallback):
            trainer.remove_callback(cb)
    return trainers


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
    summary = {m: {f: spread([s[f] for s in rows]) for f in (*FIGURES, "peak_above_step_start_mib")}
               for m, rows in by_mode.items() if rows}
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
    per_repeat("a", "b", per_token, "a/b rollout s per generated token",
               "generation cost of our multi-round rollout per kept token, relative to TRL's single turn")
    per_repeat("a", "b", per_trained, "a/b step s per trained token", "whole optimizer step per loss token")
    per_repeat("c", "a", lambda s: s["rollout_s"], "c/a rollout s", "release-style rollout time over ours (same turns)")
    per_repeat("c", "a", lambda s: s["step_s"], "c/a step s", "release-style step time over ours (same turns)")
    per_repeat("c", "a", lambda s: s["peak_memory_mib"], "c/a peak memory", "")
    per_repeat("a", "b", lambda s: s["peak_memory_mib"], "a/b peak memory", "")
    per_repeat("n", "a", lambda s: s["rollout_s"], "n/a rollout s", "rollout without vision reuse over with it")
    per_repeat("n", "a", lambda s: s["step_s"], "n/a step s", "")
    return summary, ratios


def format_table(summary: dict, ratios: dict, steps: list[dict], device: str) -> str:
    cols = [("rollout s", "rollout_s", "{:.3f}"), ("step s", "step_s", "{:.3f}"),
            ("gen tok", "generated_tokens", "{:.0f}"), ("decoded", "decoded_tokens", "{:.0f}"),
            ("trained tok", "trained_tokens", "{:.0f}"), ("gen tok/s", "generated_tokens_per_s", "{:.0f}"),
            ("trained tok/s", "trained_tokens_per_s", "{:.0f}"), ("peak MiB", "peak_memory_mib", "{:.0f}")]
    if device == "cuda":  # on CPU the allocator keeps freed pages, so RSS above the step's start says little
        cols.append(("peak-start MiB", "peak_above_step_start_mib", "{:.0f}"))
    lines = ["medians over repeats"]
    header = f"{'loop':<30}" + "".join(f"{c[0]:>14}" for c in cols)
    lines += [header, "-" * len(header)]
    for mode, figs in summary.items():
        rounds = next(s.get("rounds") for s in steps if s["mode"] == mode)
        label = f"({mode}) {MODE_NAMES[mode]} [{rounds} rnd]"
        lines.append(f"{label:<30}" + "".join(f"{fmt.format(figs[key]['median']):>14}" for _, key, fmt in cols))
    lines += ["", f"{'ratio':<40}{'min':>10}{'median':>10}{'max':>10}"]
    for name, r in ratios.items():
        lines.append(f"{name:<40}{r['min']:>10.3f}{r['median']:>10.3f}{r['max']:>10.3f}")
    return "\n".join(lines)


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
    from ground_r1.models.tiny import ensure_tiny_model
    from ground_r1.rollout.conversation import ConversationCodec

    if args.threads is not None or args.device == "cpu":
        torch.set_num_threads(args.threads or 1)
    torch.manual_seed(args.seed)
    tiny_dir = ensure_tiny_model()
    processor = load_processor(tiny_dir, min_pixels=args.min_pixels, max_pixels=args.max_pixels)
    script = ForcedScript(ConversationCodec(processor), args.policy)
    need = script.min_budget(args.num_generations, args.max_turns)
    if args.max_new_tokens_per_turn < need:
        raise SystemExit(f"--max_new_tokens_per_turn {args.max_new_tokens_per_turn} is too small for the scripted "
                         f"turns of {args.policy!r}: give at least {need}")
    logger.info("building the %s model on %s", args.geometry, args.device)
    model = build_model(args, tiny_dir, processor)
    records = load_questions(args)
    with tempfile.TemporaryDirectory(prefix="bench_rollout-") as out_dir:
        trainers = build_trainers(args, model, processor, records, script, out_dir)
        probes = {m: StepProbe(t, m, args.device, args.num_generations, args.g1) for m, t in trainers.items()}
        modes = [m for m in MODES if m in trainers]
        logger.info("warm-up: one step of each loop (%s)", ", ".join(modes))
        for m in modes:
            run_step(m, trainers[m], script, args)
            probes[m].take()
        steps: list[dict] = []
        for r in range(args.repeats):
            order = modes[r % len(modes):] + modes[: r % len(modes)]
            for m in order:
                run_step(m, trainers[m], script, args)
                steps.append({"mode": m, "repeat": r, **probes[m].take()})
                logger.info("repeat %d (%s): rollout %.3f s, step %.3f s", r, m, steps[-1]["rollout_s"], steps[-1]["step_s"])
        checks: dict[str, Any] = {}
        if "a" in probes and "c" in probes:
            same = [(x.completion_ids, x.completion_mask) == (y.completion_ids, y.completion_mask)
                    for x, y in zip(probes["a"].trajectories, probes["c"].trajectories)]
            checks["a_c_same_trajectories"] = bool(same) and all(same)
        if "a" in probes:
            finish = next(s["finish_rounds"] for s in steps if s["mode"] == "a")
            checks["a_finish_rounds"] = {str(k): finish.count(k) for k in sorted(set(finish))}
        profile_files = profile_step(trainers["a"], script, args, records, Path(args.profile)) if args.profile and "a" in trainers else {}

    summary, ratios = summarise(steps, "".join(modes))
    table = format_table(summary, ratios, steps, args.device)
    print(table)
    for name, value in checks.items():
        print(f"check {name}: {value}")
    result = {
        "command": " ".join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])]),
        "settings": vars(args),
        "environment": {
            "python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "trl": trl.__version__, "device": torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu",
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "memory_method": probes[modes[0]].memory.method,
        },
        "modes": {m: MODE_NAMES[m] for m in modes},
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
