"""Seeded random-kill harness: kill training and evaluation at seed-chosen points, resume until done, and compare
the final outputs with an uninterrupted run.

    .venv/bin/python benchmarks/reliability/kill_harness.py --seed 0 --kills 10 --target both
    bash benchmarks/run_kill_harness.sh                        # the same, with the benchmark defaults

Training (`--target train`): the tiny CPU preset (configs/grpo/tiny_cpu.yaml, sizes cut for speed, a reward that
varies within a group so the weights really move: harness_rewards.py) for `--steps` M steps with save_steps 1.
A reference run goes uninterrupted; the other run is killed K times, each time relaunched with
`--resume_from_checkpoint auto`, until it finishes. Kill kinds (seeded, every kind present when K >= 4):

- ``step_sigkill`` / ``step_sigterm``: the signal at a random wall-clock time inside a step (the harness waits
  for the step's reward call, then sleeps a random fraction of the reference's step time);
- ``ckpt_sigkill`` / ``ckpt_sigterm``: the signal inside the save of a checkpoint, at a random phase
  (``GROUND_R1_FAULT_CHECKPOINT``: begin / weights written / every file written, before COMPLETE).

SIGTERM makes the trainer finish the step, save a complete checkpoint and exit 143; SIGKILL leaves whatever was
on disk. Before each relaunch the harness computes which checkpoint must be resumed (the newest complete one),
and checks that the run said it resumed from exactly that one. Both runs also get one injected NaN loss
(`--nonfinite_step`), so a skipped step is part of what must resume identically. Compared: every step's metrics
(timing keys aside; the last record of a step counts, since a killed step is redone) and the final weights.

Evaluation (`--target eval`): `eval/multi_Ground_R1.sh` (the Ground-R1 protocol on the tiny model) on the
release-format VisCoT sample (placeholder images at the rewritten paths), judged by a local OpenAI-compatible
server. The reference run's server only scores; the killed run's server also injects, seeded per item, 429 / 503
(with Retry-After), 500, garbage replies and dropped connections, a short downtime (every request 503) that the
client's retries wait out, and, for the run after the last kill, a long one (`--long_downtime`) that outlasts
them, so items end ``failed`` and the run must be rerun. Kills (seeded): SIGKILL / SIGTERM during inference
(after a chosen number of predictions) and during judging (after a chosen number of new judgments). The run is
relaunched until every item is predicted and judged ``ok``. Compared: one record per item in predictions.jsonl
and judgments.jsonl (none missing, none twice), the predictions, the (status, score) of every judgment,
scores.jsonl and table.md.

Output: ``OUT/summary.json`` (kill points, where they landed, cycles, records lost, equal or not) and a printed
summary. Exit status 0 when everything is equal and nothing was lost.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "evaluation"))  # the scripted OpenAI-compatible server of the test suite
PY = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv" / "bin" / "python").exists() else sys.executable
EXIT_UNJUDGED = 3  # ground_r1.cli.evaluate: every stage ran, some items failed judging (a rerun completes them)

TRAIN_KINDS = ("step_sigkill", "step_sigterm", "ckpt_sigkill", "ckpt_sigterm")
EVAL_KINDS = ("infer_sigkill", "infer_sigterm", "judge_sigkill", "judge_sigterm")
CKPT_PHASES = ("begin", "weights", "marker")
# The tiny CPU preset with sizes cut so that a step takes well under a second on 2 cores, and without the
# preset's post-training held-out evaluation (a separate stage, not what is compared here).
TRAIN_OVERRIDES = [
    "--num_generations",
    "4",
    "--per_device_train_batch_size",
    "4",
    "--max_turns",
    "2",
    "--max_new_tokens_per_turn",
    "12",
    "--max_completion_length",
    "256",
    "--learning_rate",
    "1e-3",
    "--reward_functions",
    "format",
    "accuracy",
    "harness_rewards:varied_length",
    "--heldout_eval_questions",
    "0",
]
TIMING_KEYS = {"step_time", "train_runtime", "train_samples_per_second", "train_steps_per_second", "epoch"}
VISCOT_SAMPLE = "visualCoT_eval_subset150_choice.sample.jsonl"
IMAGE_PREFIX = "/home/meng/data/Visual-CoT"
JUDGE_KEY = "sk-kill-harness"


@dataclass
class KillPoint:
    index: int
    kind: str
    target: int  # train: the step; eval: predictions (infer) or new judgments (judge) written before the kill
    phase: str | None = None  # train checkpoint kills
    delay_frac: float = 0.0  # of a step (train) or of a batch (eval)
    # filled in while running
    delivered: bool = False
    effective_target: int | None = None
    exit_code: int | None = None
    landed: dict = field(default_factory=dict)


def signal_of(kind: str) -> signal.Signals:
    return signal.SIGTERM if kind.endswith("sigterm") else signal.SIGKILL


def plan_kills(kinds: tuple[str, ...], kills: int, rng: random.Random, draw_target) -> list[KillPoint]:
    """K kill points: distinct kinds (shuffled) while K allows, the rest drawn; ordered by target."""
    pool = list(kinds)
    rng.shuffle(pool)
    chosen = pool[:kills] + [rng.choice(kinds) for _ in range(kills - len(pool))]
    points = [
        KillPoint(
            0,
            kind,
            draw_target(kind),
            rng.choice(CKPT_PHASES) if kind.startswith("ckpt") else None,
            round(rng.random(), 3),
        )
        for kind in chosen
    ]
    order = {k: i for i, k in enumerate(kinds)}
    points.sort(key=lambda p: (p.target, order[p.kind]))
    for i, p in enumerate(points):
        p.index = i
    return points


def line_count(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def wait_until(predicate, proc: subprocess.Popen, timeout: float, poll: float = 0.01) -> bool:
    """True when `predicate()` holds while `proc` runs; False when it exits (or the timeout passes) first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(poll)
    return False


def launch(cmd: list[str], env: dict[str, str], log: Path, cwd: Path = REPO) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    handle = open(log, "w", encoding="utf-8")
    return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # our own child's process group
        proc.wait()
        raise RuntimeError(f"process {proc.pid} ran past {timeout:.0f} s") from None


def base_env(threads: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "GROUND_R1_FAULT", "RELIABILITY_"))}
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        NUM_GPUS="1",
    )
    env.pop("GROUND_R1_KILL_AFTER_CHECKPOINT", None)
    return env


# ================================================================================================ training


def train_command(out: Path, steps: int) -> list[str]:
    return [
        PY,
        "-m",
        "ground_r1.cli.train_grpo",
        "--config",
        str(REPO / "configs" / "grpo" / "tiny_cpu.yaml"),
        "--deepspeed",
        "",
        "--output_dir",
        str(out),
        *TRAIN_OVERRIDES,
        "--max_steps",
        str(steps),
        "--save_steps",
        "1",
        "--resume_from_checkpoint",
        "auto",
    ]


def train_env(threads: int, heartbeat: Path, nonfinite_step: int) -> dict[str, str]:
    env = base_env(threads)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    env["RELIABILITY_HEARTBEAT"] = str(heartbeat)
    if nonfinite_step:
        env["GROUND_R1_FAULT_NONFINITE"] = f"loss:{nonfinite_step}"
    return env


def heartbeats(path: Path, pid: int | None = None) -> list[tuple[int, int, float]]:
    rows = []
    try:
        text = path.read_text()
    except FileNotFoundError:
        return rows
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and (pid is None or int(parts[0]) == pid):
            rows.append((int(parts[0]), int(parts[1]), float(parts[2])))
    return rows


def step_seconds(*paths: Path, default: float = 1.0) -> float:
    """Median time between two consecutive reward calls of one process (one optimizer step)."""
    gaps = []
    for path in paths:
        beats = heartbeats(path)
        gaps += [b[2] - a[2] for a, b in zip(beats, beats[1:]) if a[0] == b[0] and b[1] == a[1] + 1]
    return statistics.median(gaps) if gaps else default


def checkpoint_states(out: Path) -> dict[str, list[str]]:
    from ground_r1.checkpoints import checkpoint_problems, list_checkpoints

    return {p.name: checkpoint_problems(p) for p in list_checkpoints(out)}


def expected_resume(out: Path) -> str | None:
    from ground_r1.checkpoints import last_complete_checkpoint

    found = last_complete_checkpoint(out)
    return found.name if found else None


def resumed_from(log: Path) -> str | None:
    for line in log.read_text(errors="replace").splitlines():
        if "resuming from " in line:
            return Path(line.split("resuming from ", 1)[1].strip()).name
    return None


def read_metrics(path: Path) -> tuple[dict[int, dict], dict[int, int], int]:
    """(step -> the last per-step record without timing keys, step -> how many records, torn lines)."""
    last: dict[int, dict] = {}
    count: dict[int, int] = {}
    torn = 0
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            torn += 1
            continue
        if "loss" in rec:
            last[rec["step"]] = {k: v for k, v in rec.items() if k not in TIMING_KEYS}
            count[rec["step"]] = count.get(rec["step"], 0) + 1
    return last, count, torn


def compare_weights(a: Path, b: Path) -> float | None:
    from safetensors.torch import load_file

    if not (a / "model.safetensors").is_file() or not (b / "model.safetensors").is_file():
        return None
    x, y = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    if set(x) != set(y):
        return math.inf
    return max(float((x[k].double() - y[k].double()).abs().max()) for k in x)


def run_train(args, work: Path, rng: random.Random) -> dict[str, Any]:
    steps = args.steps
    nonfinite_step = args.nonfinite_step if args.nonfinite_step is not None else rng.randint(2, max(2, steps - 1))
    points = plan_kills(
        TRAIN_KINDS, args.kills, rng, lambda kind: rng.randint(1, steps - 1 if kind.startswith("step") else steps)
    )
    ref_dir, run_dir = work / "train_reference", work / "train_killed"
    for d in (ref_dir, run_dir):
        shutil.rmtree(d, ignore_errors=True)
    start = time.monotonic()
    ref_hb = work / "train_reference.heartbeat"
    ref_hb.unlink(missing_ok=True)
    ref = launch(
        train_command(ref_dir, steps),
        train_env(args.threads, ref_hb, nonfinite_step),
        work / "logs" / "train_reference.log",
    )
    if not args.parallel:
        if finish(ref, args.timeout) != 0:
            raise RuntimeError(f"the reference training run failed: see {work / 'logs' / 'train_reference.log'}")
    hb = work / "train_killed.heartbeat"
    hb.unlink(missing_ok=True)
    launches: list[dict[str, Any]] = []
    half_written_skipped: set[str] = set()
    wrong_resume = 0

    def relaunch(env_extra: dict[str, str]) -> tuple[subprocess.Popen, Path, dict]:
        states = checkpoint_states(run_dir)
        incomplete = sorted(name for name, problems in states.items() if problems)
        expect = expected_resume(run_dir)
        env = train_env(args.threads, hb, nonfinite_step)
        env.update(env_extra)
        log = work / "logs" / f"train_launch{len(launches)}.log"
        info = {
            "launch": len(launches),
            "expected_resume": expect,
            "incomplete_on_disk": incomplete,
            "fault_env": env_extra,
        }
        launches.append(info)
        return launch(train_command(run_dir, steps), env, log), log, info

    def after(proc, log, info, rc):
        info["exit_code"] = rc
        info["resumed_from"] = resumed_from(log)
        nonlocal wrong_resume
        if info["resumed_from"] != info["expected_resume"] or info["resumed_from"] in info["incomplete_on_disk"]:
            wrong_resume += 1
        half_written_skipped.update(info["incomplete_on_disk"])

    done = False
    for point in points:
        resume_step = int(expected_resume(run_dir).split("-")[1]) if expected_resume(run_dir) else 0
        target = max(point.target, resume_step + 1)
        kind = point.kind
        if kind.startswith("step") and target > steps - 1:
            kind = "ckpt_" + kind.split("_")[1]  # no later step to place it in: place it in the last save
            point.landed["converted_from"] = point.kind
        if target > steps:
            point.landed["missed"] = "the run had no step left"
            continue
        point.effective_target = target
        point.landed["kind"] = kind
        extra = {}
        if kind.startswith("ckpt"):
            extra["GROUND_R1_FAULT_CHECKPOINT"] = f"{target}:{point.phase or 'marker'}:{kind.split('_')[1][3:]}"
        proc, log, info = relaunch(extra)
        info["kill"] = point.index
        if kind.startswith("step"):
            reached = wait_until(lambda: any(s >= target for _, s, _ in heartbeats(hb, proc.pid)), proc, args.timeout)
            if reached:
                step_time = args.step_time or step_seconds(ref_hb, hb)
                point.landed["delay_s"] = round(point.delay_frac * step_time, 3)
                time.sleep(point.delay_frac * step_time)
                if proc.poll() is None:
                    beats = heartbeats(hb, proc.pid)
                    point.landed.update(
                        last_reward_step=beats[-1][1] if beats else None, checkpoints=checkpoint_states(run_dir)
                    )
                    os.kill(proc.pid, signal_of(kind))  # our own child
                    point.delivered = True
        rc = finish(proc, args.timeout)
        after(proc, log, info, rc)
        point.exit_code = rc
        if kind.startswith("ckpt"):
            point.delivered = rc in (-signal.SIGKILL, 128 + signal.SIGTERM)
            point.landed.update(checkpoints=checkpoint_states(run_dir))
        point.landed["checkpoints_after"] = {
            k: ("complete" if not v else "incomplete") for k, v in checkpoint_states(run_dir).items()
        }
        if rc == 0:
            if not point.delivered:
                point.landed["missed"] = "the run finished first"
            done = True
            break
    for _ in range(args.max_reruns):
        if done:
            break
        proc, log, info = relaunch({})
        rc = finish(proc, args.timeout)
        after(proc, log, info, rc)
        done = rc == 0
    if args.parallel and finish(ref, args.timeout) != 0:
        raise RuntimeError(f"the reference training run failed: see {work / 'logs' / 'train_reference.log'}")

    ref_metrics, _, _ = read_metrics(ref_dir / "metrics.jsonl")
    run_metrics, counts, torn = read_metrics(run_dir / "metrics.jsonl")
    differing = sorted(s for s in ref_metrics if run_metrics.get(s) != ref_metrics[s])
    lost = sorted(set(ref_metrics) - set(run_metrics))
    diff = compare_weights(ref_dir, run_dir)
    events = lambda d: (  # noqa: E731
        sorted(
            {
                (e["step"], e["which"], e["action"])
                for e in map(json.loads, (d / "nonfinite_steps.jsonl").read_text().splitlines())
            }
        )
        if (d / "nonfinite_steps.jsonl").is_file()
        else []
    )
    delivered = [p for p in points if p.delivered]
    return {
        "steps": steps,
        "nonfinite_step": nonfinite_step,
        "kills_planned": len(points),
        "kills_delivered": len(delivered),
        "kills_by_kind": {k: sum(1 for p in delivered if p.landed.get("kind") == k) for k in TRAIN_KINDS},
        "cycles": len(launches) - 1,
        "launches": launches,
        "kill_points": [asdict(p) for p in points],
        "finished": done,
        "half_written_checkpoints_skipped": sorted(half_written_skipped),
        "wrong_resumes": wrong_resume,
        "steps_compared": len(ref_metrics),
        "steps_redone": sum(c - 1 for c in counts.values()),
        "torn_metric_lines": torn,
        "records_lost": len(lost) + (0 if (run_dir / "model.safetensors").is_file() else 1),
        "metrics_equal": not differing and not lost,
        "differing_steps": differing,
        "weights_max_abs_diff": diff,
        "weights_equal": diff is not None and diff <= args.weight_tolerance,
        "nonfinite_events_equal": events(ref_dir) == events(run_dir),
        "step_time_s": round(step_seconds(ref_hb, hb), 3),
        "wall_s": round(time.monotonic() - start, 1),
    }


# ============================================================================================== evaluation


def write_placeholders(data: Path, root: Path) -> None:
    """Images the release records point to (IMAGE_PREFIX replaced by `root`), sized as the records say."""
    from PIL import Image

    for line in data.read_text().splitlines():
        r = json.loads(line)
        path = root / r["image"][len(IMAGE_PREFIX) + 1 :]
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            colour = ((r["width"] * 7) % 256, (r["height"] * 13) % 256, 90)
            Image.new("RGB", (r["width"], r["height"]), colour).save(path)


def score_of(request) -> tuple:
    """A deterministic judge: the score depends only on what is judged."""
    digest = hashlib.sha256(request.user_content.encode("utf-8")).digest()
    return ("score", (digest[0] % 11) / 10)


class FaultPolicy:
    """The killed run's judge endpoint: per-item faults (seeded by the item's messages) and downtime episodes
    started by the request count. Thread-safe (the server answers requests in threads)."""

    TRANSIENT = (
        ("status", 429, 0.02),
        ("status", 503, 0.02),
        ("status", 500),
        ("garbage", "I cannot grade this."),
        ("drop",),
    )

    def __init__(self, seed: int, n_items: int, rng: random.Random):
        self.seed = seed
        self.lock = threading.Lock()
        self.count = 0
        # (first request index, seconds down): a short episode the client's retries outlast, seeded within the
        # first half of the items; `arm_long_downtime` adds one they do not outlast.
        self.episodes = [(rng.randint(1, max(1, n_items // 2)), 0.6)]
        self.down_until = -1.0
        self.stats = {
            "requests": 0,
            "downtime_requests": 0,
            "episodes_started": 0,
            "429": 0,
            "503": 0,
            "500": 0,
            "garbage": 0,
            "drop": 0,
            "scored": 0,
        }
        self.scored_per_item: dict[str, int] = {}

    def arm_long_downtime(self, seconds: float = 5.0) -> None:
        """Down from the next request for `seconds`: longer than the retry window (7 requests x 0.25 s
        Retry-After), so the items in flight end `failed` and the run has to be rerun."""
        with self.lock:
            self.episodes.append((self.count, seconds))
            self.episodes.sort()

    def item_faults(self, signature: str) -> list[tuple]:
        r = random.Random(hashlib.sha256(f"{self.seed}:{signature}".encode()).hexdigest())
        return [r.choice(self.TRANSIENT) for _ in range(r.choice((0, 0, 1, 1, 2)))]

    def __call__(self, request, n: int) -> tuple:
        now = time.monotonic()
        with self.lock:
            index = self.count
            self.count += 1
            self.stats["requests"] += 1
            while self.episodes and index >= self.episodes[0][0]:
                self.down_until = max(self.down_until, now + self.episodes.pop(0)[1])
                self.stats["episodes_started"] += 1
            if now < self.down_until:
                self.stats["downtime_requests"] += 1
                return ("status", 503, 0.25)
            faults = self.item_faults(json.dumps(request.messages, sort_keys=True))
            behaviour = faults[n] if n < len(faults) else score_of(request)
            name = {"status": str(behaviour[1]) if behaviour[0] == "status" else None}.get(behaviour[0], behaviour[0])
            key = "scored" if behaviour[0] == "score" else name
            self.stats[key] = self.stats.get(key, 0) + 1
            if behaviour[0] == "score":
                item = request.user_content
                self.scored_per_item[item] = self.scored_per_item.get(item, 0) + 1
            return behaviour


def eval_command(items_per_dataset: int) -> list[str]:
    return [
        "bash",
        str(REPO / "eval" / "multi_Ground_R1.sh"),
        "--max_items",
        str(items_per_dataset),
        "--max_new_tokens",
        "8",
        "--max_turns",
        "2",
        "--judge_concurrency",
        "2",
        "--no_progress",
    ]


def eval_env(args, out: Path, data: Path, images: Path, server_url: str) -> dict[str, str]:
    env = base_env(args.threads)
    env.update(
        DATA_PATH=str(data),
        IMAGE_ROOT=str(images),
        IMAGE_PATH_PREFIX=IMAGE_PREFIX,
        OUTPUT_DIR=str(out),
        BATCH_SIZE=str(args.eval_batch_size),
        OPENAI_BASE_URL=server_url,
        OPENAI_API_KEY=JUDGE_KEY,
        OPENAI_MODEL="judge-harness",
    )
    return env


def jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            out.append({"_torn": line})
    return out


def eval_done(out: Path, n_items: int) -> bool:
    preds, judged = jsonl(out / "predictions.jsonl"), jsonl(out / "judgments.jsonl")
    ok_preds = {p.get("key") for p in preds if p.get("status") == "ok"}
    latest = {j.get("key"): j for j in judged}
    return (
        len(ok_preds) == n_items
        and all(latest.get(k, {}).get("status") == "ok" for k in ok_preds)
        and (out / "table.md").is_file()
    )


def run_eval(args, work: Path, rng: random.Random) -> dict[str, Any]:
    from fake_chat_server import FakeChatServer

    from ground_r1.paths import shared_dir

    shared = shared_dir()
    if shared is None:
        raise RuntimeError(
            "shared/ not found beside the checkout (set GROUND_R1_SHARED): the release samples live there"
        )
    data = shared / "data" / "release-format" / VISCOT_SAMPLE
    datasets = [json.loads(line)["dataset"] for line in data.read_text().splitlines()]
    n_items = sum(min(datasets.count(d), args.items_per_dataset) for d in set(datasets))
    images = work / "viscot_images"
    write_placeholders(data, images)
    ref_dir, run_dir = work / "eval_reference", work / "eval_killed"
    for d in (ref_dir, run_dir):
        shutil.rmtree(d, ignore_errors=True)
    points = plan_kills(
        EVAL_KINDS,
        args.kills,
        rng,
        lambda kind: rng.randint(0, n_items - 1) if kind.startswith("infer") else rng.randint(0, 2),
    )
    # Inference kills first (in prediction order), then judging kills.
    points.sort(key=lambda p: (p.kind.startswith("judge"), p.target))
    for i, p in enumerate(points):
        p.index = i
    policy = FaultPolicy(args.seed, n_items, rng)
    start = time.monotonic()
    launches: list[dict[str, Any]] = []
    with FakeChatServer(policy=lambda req, n: score_of(req)) as clean, FakeChatServer(policy=policy) as faulty:
        ref = launch(
            eval_command(args.items_per_dataset),
            eval_env(args, ref_dir, data, images, clean.base_url),
            work / "logs" / "eval_reference.log",
        )
        if not args.parallel and finish(ref, args.timeout) != 0:
            raise RuntimeError(f"the reference evaluation failed: see {work / 'logs' / 'eval_reference.log'}")
        batch_time = args.batch_time
        shard = run_dir / "predictions.rank0.jsonl"
        judgments = run_dir / "judgments.jsonl"

        def relaunch():
            log = work / "logs" / f"eval_launch{len(launches)}.log"
            launches.append({"launch": len(launches)})
            return launch(
                eval_command(args.items_per_dataset), eval_env(args, run_dir, data, images, faulty.base_url), log
            ), log

        done, resumable_exits = False, 0
        for point in points:
            proc, log = relaunch()
            launches[-1]["kill"] = point.index
            kind = point.kind
            predicted = line_count(shard)
            if kind.startswith("infer") and predicted >= n_items:
                kind = "judge_" + kind.split("_")[1]  # inference is complete: kill the judging instead
                point.landed["converted_from"] = point.kind
            point.landed["kind"] = kind
            if kind.startswith("infer"):
                target = max(point.target, predicted)
                point.effective_target = target
                reached = wait_until(lambda: line_count(shard) >= target, proc, args.timeout)
                delay = point.delay_frac * batch_time
            else:
                # judge.py's own line, logged after it dropped the records it will redo: the count is stable now.
                reached = wait_until(lambda: "already done in" in log.read_text(), proc, args.timeout)
                base = line_count(judgments)
                target = base + point.target
                point.effective_target = target
                reached = reached and wait_until(lambda: line_count(judgments) >= target, proc, args.timeout, 0.005)
                delay = point.delay_frac * 0.2
            if reached:
                time.sleep(delay)
                if proc.poll() is None:
                    point.landed.update(
                        predictions=line_count(shard),
                        judgments=line_count(judgments),
                        phase="judging" if "judging " in log.read_text() else "inference",
                    )
                    os.kill(proc.pid, signal_of(kind))  # our own child
                    point.delivered = True
            rc = finish(proc, args.timeout)
            point.exit_code = launches[-1]["exit_code"] = rc
            done = rc == 0 and eval_done(run_dir, n_items)
            resumable_exits += int(rc in (0, EXIT_UNJUDGED) and not done)
            if done:
                if not point.delivered:
                    point.landed["missed"] = "the run finished first"
                break
        if not done and args.long_downtime > 0:
            policy.arm_long_downtime(args.long_downtime)  # the next run meets an endpoint down past its retries
        for _ in range(args.max_reruns):
            if done:
                break
            proc, log = relaunch()
            rc = finish(proc, args.timeout)
            launches[-1]["exit_code"] = rc
            done = rc == 0 and eval_done(run_dir, n_items)
            resumable_exits += int(rc in (0, EXIT_UNJUDGED) and not done)
        if args.parallel and finish(ref, args.timeout) != 0:
            raise RuntimeError(f"the reference evaluation failed: see {work / 'logs' / 'eval_reference.log'}")

    ref_preds, run_preds = jsonl(ref_dir / "predictions.jsonl"), jsonl(run_dir / "predictions.jsonl")
    ref_judged, run_judged_lines = jsonl(ref_dir / "judgments.jsonl"), jsonl(run_dir / "judgments.jsonl")
    ref_keys = [p["key"] for p in ref_preds]
    run_keys = [p.get("key") for p in run_preds]
    judged_keys = [j.get("key") for j in run_judged_lines]
    run_ok_judged = {j.get("key") for j in run_judged_lines if j.get("status") == "ok"}
    run_scores = jsonl(run_dir / "scores.jsonl")
    lost = (
        len(set(ref_keys) - {p.get("key") for p in run_preds if p.get("status") == "ok"})
        + len(set(ref_keys) - run_ok_judged)
        + len(set(ref_keys) - {s.get("key") for s in run_scores})
    )
    strip = lambda rows: {r["key"]: (r["status"], r["score"]) for r in rows if "key" in r}  # noqa: E731
    delivered = [p for p in points if p.delivered]
    return {
        "items": n_items,
        "kills_planned": len(points),
        "kills_delivered": len(delivered),
        "kills_by_kind": {k: sum(1 for p in delivered if p.landed.get("kind") == k) for k in EVAL_KINDS},
        "cycles": len(launches) - 1,
        "resumable_exits": resumable_exits,
        "launches": launches,
        "kill_points": [asdict(p) for p in points],
        "finished": done,
        "judge_faults": policy.stats,
        "items_judged_ok_more_than_once_by_the_server": sum(1 for c in policy.scored_per_item.values() if c > 1),
        "duplicate_prediction_records": len(run_keys) - len(set(run_keys)),
        "duplicate_judgment_records": len(judged_keys) - len(set(judged_keys)),
        "predicted_exactly_once": sorted(run_keys) == sorted(ref_keys),
        "judged_exactly_once": sorted(judged_keys) == sorted(ref_keys) and run_ok_judged == set(ref_keys),
        "records_lost": lost,
        "predictions_equal": run_preds == ref_preds,
        "judgments_equal": strip(run_judged_lines) == strip(ref_judged),
        "scores_equal": (run_dir / "scores.jsonl").read_bytes() == (ref_dir / "scores.jsonl").read_bytes()
        if (run_dir / "scores.jsonl").is_file()
        else False,
        "table_equal": (run_dir / "table.md").read_bytes() == (ref_dir / "table.md").read_bytes()
        if (run_dir / "table.md").is_file()
        else False,
        "wall_s": round(time.monotonic() - start, 1),
    }


# ==================================================================================================== main


def passed(part: dict[str, Any], kind: str) -> bool:
    if kind == "train":
        return (
            part["finished"]
            and part["metrics_equal"]
            and part["weights_equal"]
            and part["records_lost"] == 0
            and part["wrong_resumes"] == 0
            and part["nonfinite_events_equal"]
        )
    return (
        part["finished"]
        and part["records_lost"] == 0
        and part["predicted_exactly_once"]
        and part["judged_exactly_once"]
        and part["predictions_equal"]
        and part["judgments_equal"]
        and part["scores_equal"]
        and part["table_equal"]
    )


def print_summary(summary: dict[str, Any]) -> None:
    lines = [f"kill harness: seed {summary['seed']}, {summary['kills']} kills per target"]
    if "train" in summary:
        t = summary["train"]
        lines.append(
            f"  train: {t['kills_delivered']}/{t['kills_planned']} kills delivered {t['kills_by_kind']}, "
            f"{t['cycles']} kill/resume cycles, {len(t['half_written_checkpoints_skipped'])} half-written "
            f"checkpoint(s) skipped, wrong resumes {t['wrong_resumes']}, steps redone {t['steps_redone']}; "
            f"records lost {t['records_lost']}; metrics equal {t['metrics_equal']} ({t['steps_compared']} steps), "
            f"weights max |diff| {t['weights_max_abs_diff']}; {t['wall_s']} s -> {'PASS' if t['passed'] else 'FAIL'}"
        )
    if "eval" in summary:
        e = summary["eval"]
        lines.append(
            f"  eval: {e['kills_delivered']}/{e['kills_planned']} kills delivered {e['kills_by_kind']}, "
            f"{e['cycles']} cycles ({e['resumable_exits']} of them resumable exits: judge items failed in a downtime), "
            f"{e['items']} items; "
            f"judge faults {e['judge_faults']}; records lost {e['records_lost']}, duplicates "
            f"{e['duplicate_prediction_records']}+{e['duplicate_judgment_records']}; predictions/judgments/scores/"
            f"table equal {e['predictions_equal']}/{e['judgments_equal']}/{e['scores_equal']}/{e['table_equal']}; "
            f"{e['wall_s']} s -> {'PASS' if e['passed'] else 'FAIL'}"
        )
    print("\n".join(lines), flush=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--seed", type=int, default=0, help="chooses the kill points, delays, phases and judge faults")
    p.add_argument("--kills", type=int, default=10, help="kill points per target")
    p.add_argument("--train_kills", type=int, default=None, help="kill points for training (default --kills)")
    p.add_argument("--eval_kills", type=int, default=None, help="kill points for evaluation (default --kills)")
    p.add_argument("--target", choices=("train", "eval", "both"), default="both")
    p.add_argument("--steps", type=int, default=None, help="training steps M (default max(12, kills + 3))")
    p.add_argument(
        "--nonfinite_step",
        type=int,
        default=None,
        help="step with an injected NaN loss in both runs (default: seed-chosen; 0 = none)",
    )
    p.add_argument("--items_per_dataset", type=int, default=2, help="VisCoT sample items per sub-dataset (13 sets)")
    p.add_argument("--eval_batch_size", type=int, default=2)
    p.add_argument(
        "--long_downtime",
        type=float,
        default=5.0,
        help="seconds the judge endpoint is down for the run "
        "after the last kill (longer than its retry window: a rerun is needed); 0 = none",
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (the same in both runs)")
    p.add_argument(
        "--parallel",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the reference beside the killed run",
    )
    p.add_argument(
        "--step_time",
        type=float,
        default=None,
        help="seconds per step used to place in-step kills (default: measured on the heartbeats so far)",
    )
    p.add_argument("--batch_time", type=float, default=0.5, help="seconds per inference batch, to place kills")
    p.add_argument("--weight_tolerance", type=float, default=0.0, help="max |difference| of final weights")
    p.add_argument("--max_reruns", type=int, default=6, help="relaunches after the last kill")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds any one process may run")
    p.add_argument("--out", default=str(REPO / "outputs" / "kill_harness"), help="work folder; summary.json here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The harness reads checkpoint folders too; their "skipping incomplete checkpoint" lines belong to the runs' logs.
    logging.getLogger("ground_r1.checkpoints").setLevel(logging.ERROR)
    work = Path(args.out).resolve()
    work.mkdir(parents=True, exist_ok=True)
    given = argv if argv is not None else sys.argv[1:]
    summary: dict[str, Any] = {
        "seed": args.seed,
        "kills": args.kills,
        "target": args.target,
        "command": " ".join(["kill_harness.py", *given]),
    }
    ok = True
    if args.target in ("train", "both"):
        kills = args.train_kills if args.train_kills is not None else args.kills
        args.steps = args.steps or max(12, kills + 3)
        sub = argparse.Namespace(**{**vars(args), "kills": kills})
        part = run_train(sub, work, random.Random(f"train:{args.seed}"))
        part["passed"] = passed(part, "train")
        ok &= part["passed"]
        summary["train"] = part
    if args.target in ("eval", "both"):
        kills = args.eval_kills if args.eval_kills is not None else args.kills
        sub = argparse.Namespace(**{**vars(args), "kills": kills})
        part = run_eval(sub, work, random.Random(f"eval:{args.seed}"))
        part["passed"] = passed(part, "eval")
        ok &= part["passed"]
        summary["eval"] = part
    summary["passed"] = ok
    (work / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print_summary(summary)
    print(f"summary: {work / 'summary.json'}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
