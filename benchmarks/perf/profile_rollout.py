#!/usr/bin/env python
"""Where the rollout's time goes, round by round: rows, context width, prefill and decode cost per step.

    .venv/bin/python benchmarks/perf/profile_rollout.py                 # tiny model, CPU, N=8, mixed rounds
    .venv/bin/python benchmarks/perf/profile_rollout.py --repeats 7 --out benchmarks/perf/profiles/rollout_rounds.txt

The same loops, model, questions and forced text as bench_rollout.py (`mixed_rounds`: trajectories end in rounds
1, 2 and 3; every turn exactly the per-turn budget). For each generate call of one rollout of (a) (with and
without the KV cache carried between rounds, `rollout/kv_reuse.py`) and of (b) (TRL's single call), it times the
model forwards inside `generate`: the first forward of a call is its prefill (the tokens not in a cache), every
later one a decode step; the rest of the call is generate's own per-step work (logits processors, sampling,
stopping, cache bookkeeping). Times are CPU seconds of the process (`time.process_time`: time spent waiting for
a core shared with other jobs is not counted), the fastest of `--repeats` rollouts per call, the loops
interleaved within each repeat. The last column says what a call's decode
steps cost per generated row-token.
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

import bench_rollout as bench  # noqa: E402


def _clock() -> float:
    """CPU seconds of this process: on a CPU shared with other jobs, time spent descheduled is not counted (with
    one torch thread, CPU time is the work done). On CUDA, wall time after a synchronize."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        return time.perf_counter()
    return time.process_time()


def instrument(model):
    """Record (input shape, seconds) of every forward, and group them per generate call."""
    forwards: list[tuple[tuple[int, ...], float]] = []
    calls: list[tuple[float, list]] = []
    inner_forward, inner_generate = model.forward, model.generate

    @functools.wraps(inner_forward)
    def forward(*args, **kwargs):
        start = _clock()
        out = inner_forward(*args, **kwargs)
        ids = kwargs.get("input_ids")
        forwards.append((tuple(ids.shape) if ids is not None else (0, 0), _clock() - start))
        return out

    @functools.wraps(inner_generate)
    def generate(*args, **kwargs):
        first, start = len(forwards), _clock()
        out = inner_generate(*args, **kwargs)
        calls.append((_clock() - start, forwards[first:]))
        return out

    model.forward, model.generate = forward, generate
    return calls


def summarise(calls) -> list[dict]:
    rows = []
    for seconds, fwd in calls:
        prefill, decode = fwd[0], fwd[1:]
        decode_s = sum(s for _, s in decode)
        steps = max(1, len(decode))
        batch = decode[0][0][0] if decode else prefill[0][0]
        rows.append(
            {
                "rows": batch,
                "prefill_tokens": prefill[0][0] * prefill[0][1],
                "prefill_ms": 1000 * prefill[1],
                "steps": len(decode),
                "forward_ms_per_step": 1000 * decode_s / steps,
                "other_ms_per_step": 1000 * (seconds - prefill[1] - decode_s) / steps,
                "call_ms": 1000 * seconds,
                "ms_per_row_token": 1000 * (seconds - prefill[1]) / steps / batch,
            }
        )
    return rows


def fastest(runs: list[list[dict]]) -> list[dict]:
    """Per call, the run where that call was fastest."""
    return [min((run[i] for run in runs), key=lambda r: r["call_ms"]) for i in range(len(runs[0]))]


def table(title: str, rows: list[dict], total_ms: float) -> str:
    head = (
        f"{'call':>4} {'rows':>5} {'prefill tok':>12} {'prefill ms':>11} {'steps':>6} {'fwd ms/step':>12} "
        f"{'other ms/step':>14} {'call ms':>9} {'ms/row-token':>13}"
    )
    lines = [title, head, "-" * len(head)]
    for i, r in enumerate(rows, 1):
        lines.append(
            f"{i:>4} {r['rows']:>5} {r['prefill_tokens']:>12} {r['prefill_ms']:>11.1f} {r['steps']:>6} "
            f"{r['forward_ms_per_step']:>12.2f} {r['other_ms_per_step']:>14.2f} {r['call_ms']:>9.1f} "
            f"{r['ms_per_row_token']:>13.3f}"
        )
    prefill = sum(r["prefill_ms"] for r in rows)
    lines.append(
        f"sum of calls {sum(r['call_ms'] for r in rows):.1f} ms (prefill {prefill:.1f} ms); whole rollout "
        f"{total_ms:.1f} ms (fastest)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default=None, help="also write the tables to this file")
    args, rest = p.parse_known_args(argv)
    bargs = bench.parse_args(["--modes", "abk", *rest])
    torch.set_num_threads(bargs.threads or 1)
    torch.manual_seed(bargs.seed)
    from ground_r1.data.images import load_image
    from ground_r1.models.loading import load_processor
    from ground_r1.demo.tiny import ensure_tiny_model
    from ground_r1.rollout.conversation import ConversationCodec
    from ground_r1.rollout.runner import RolloutQuestion

    tiny = ensure_tiny_model()
    processor = load_processor(tiny, min_pixels=bargs.min_pixels, max_pixels=bargs.max_pixels)
    script = bench.ForcedScript(ConversationCodec(processor), bargs.policy)
    model = bench.build_model(bargs, tiny, processor)
    records = bench.load_questions(bargs)
    trainers = bench.build_trainers(bargs, model, processor, records, script, tempfile.mkdtemp(prefix="profile-"))
    questions = [RolloutQuestion(r["problem"], load_image(r["image"])) for r in records]
    calls = instrument(model)

    def ours(mode: str) -> None:
        trainers[mode].model.train()
        trainers[mode]._rollout(questions, "train")

    def trl_single_turn() -> None:
        trainer = trainers["b"]
        trainer.model.train()
        inputs = [dict(trainer.train_dataset[q]) for q in range(len(records)) for _ in range(bargs.num_generations)]
        make = script.for_single_turn(bargs.num_generations, bargs.max_new_tokens_per_turn)
        timed = model.generate  # forced_generate deletes the instance attribute it set: put ours back after
        try:
            with bench.forced_generate(model, make):
                trainer._generate_and_score_completions(inputs)
        finally:
            model.generate = timed

    loops = (
        ("(a) GroundR1Trainer rollout, KV cache carried between rounds", lambda: ours("a")),
        ("(k) the same without the carry-over (every round prefills whole contexts)", lambda: ours("k")),
        ("(b) TRL GRPOTrainer, one single-turn call (whole rollout = TRL's generate and scoring)", trl_single_turn),
    )
    runs: dict[str, list] = {title: [] for title, _ in loops}
    totals: dict[str, list] = {title: [] for title, _ in loops}
    for repeat in range(args.repeats + 1):  # the first is a warm-up; loops interleaved so load hits all alike
        for title, run in loops:
            calls.clear()
            start = _clock()
            run()
            if repeat:
                totals[title].append(1000 * (_clock() - start))
                runs[title].append(summarise(calls))
    sections = [table(title, fastest(runs[title]), min(totals[title])) for title, _ in loops]
    header = (
        f"profile_rollout.py: tiny model, CPU, {bargs.questions} questions, N={bargs.num_generations}, "
        f"G1={bargs.g1}, {bargs.max_turns} turns of {bargs.max_new_tokens_per_turn} tokens ({bargs.policy}), "
        f"torch threads {torch.get_num_threads()}, fastest of {args.repeats}"
    )
    text = "\n\n".join([header, *sections]) + "\n"
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
