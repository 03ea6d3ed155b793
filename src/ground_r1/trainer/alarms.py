"""Collapse alarms: named warnings when a run shows the signs of the failures this kind of training is known for.

SPEC §9: the one public reproduction of the paper's settings collapsed to one-round, ~20-token answers; users of
DeepEyes-style tool RL report tool calls dying out. Each alarm watches one logged metric (docs/metrics.md) as
its mean over the last `alarm_window` logged steps, and fires when that mean crosses its threshold:

| alarm | metric | fires when the window mean ... | default |
|---|---|---|---|
| `one_round_collapse` | `rollout/turns_mean` | is at or below `alarm_min_turns` (the policy answers without looking) | 1.1 |
| `length_collapse` | `completions/mean_length` | is below `alarm_length_ratio` x its first window (answers shrink) | 0.5 |
| `no_signal` | `frac_reward_zero_std` | is at or above `alarm_max_zero_std` (most groups teach nothing) | 0.75 |
| `format_drop` | `rewards/format_reward/mean` | is `alarm_format_drop` or more below its best window so far | 0.3 |
| `no_box_rise` | `giou/no_box_rate` | is `alarm_no_box_rise` or more above its lowest window so far | 0.25 |

An alarm fires when its condition becomes true; it fires again only after the condition has been clear for a
whole window (a mean hovering at the threshold does not repeat it). Each firing is a WARNING in
the log (`ALARM <name> at step ...`), a line of `OUTPUT_DIR/alarms.jsonl`, a line of the run's report and a mark
on `curves.png`; with `alarm_action: stop` the run saves a checkpoint of that step and ends (exit code 3 from the
launcher). The alarms are computed from the logged history alone (`scan`), so a resumed run (its history is
restored from the checkpoint) raises exactly what the unbroken run would, and `python -m ground_r1.cli.replay_alarms
OUTPUT_DIR` replays them over any run's `metrics.jsonl`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

ALARMS_NAME = "alarms.jsonl"
ACTIONS = ("warn", "stop")
STOPPED_EXIT_CODE = 3  # the launcher's code for a run stopped by an alarm (README, "Exit codes")


@dataclass(frozen=True)
class AlarmSettings:
    """The thresholds (config keys `alarm_*` of GroundR1Config; defaults in the module doc)."""

    window: int = 20
    min_turns: float = 1.1
    length_ratio: float = 0.5
    max_zero_std: float = 0.75
    format_drop: float = 0.3
    no_box_rise: float = 0.25

    @classmethod
    def from_args(cls, args: Any) -> "AlarmSettings":
        return cls(
            window=args.alarm_window,
            min_turns=args.alarm_min_turns,
            length_ratio=args.alarm_length_ratio,
            max_zero_std=args.alarm_max_zero_std,
            format_drop=args.alarm_format_drop,
            no_box_rise=args.alarm_no_box_rise,
        )


@dataclass(frozen=True)
class Alarm:
    name: str
    metric: str
    what: str  # the metric in words, for the message
    meaning: str


ALARMS: tuple[Alarm, ...] = (
    Alarm(
        "one_round_collapse",
        "rollout/turns_mean",
        "turns per trajectory",
        "the policy answers without looking (SPEC §9's one-round collapse)",
    ),
    Alarm(
        "length_collapse",
        "completions/mean_length",
        "sampled tokens per trajectory",
        "answers are shrinking (the collapse to ~20-token answers)",
    ),
    Alarm(
        "no_signal",
        "frac_reward_zero_std",
        "share of groups with all-equal rewards",
        "most groups teach nothing (every advantage 0): consider dynamic_sampling or harder/easier data",
    ),
    Alarm("format_drop", "rewards/format_reward/mean", "format reward", "turns stop following the template"),
    Alarm("no_box_rise", "giou/no_box_rate", "no-box rate of grounding turns", "grounding turns stop writing boxes"),
)
BY_NAME = {a.name: a for a in ALARMS}


@dataclass(frozen=True)
class AlarmEvent:
    alarm: str
    step: int
    metric: str
    value: float  # the window mean that crossed
    threshold: float  # the value it crossed
    window: int
    message: str

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def settings_problems(args: Any) -> list[str]:
    """What is wrong with a config's alarm settings (GroundR1Config.__post_init__ lists them)."""
    problems = []
    if args.alarm_action not in ACTIONS:
        problems.append(f"alarm_action must be one of {', '.join(ACTIONS)}, got {args.alarm_action!r}")
    if args.alarm_window < 1:
        problems.append(f"alarm_window must be >= 1, got {args.alarm_window}")
    if not 0.0 < args.alarm_length_ratio < 1.0:
        problems.append(f"alarm_length_ratio must be in (0, 1), got {args.alarm_length_ratio}")
    if not 0.0 < args.alarm_max_zero_std <= 1.0:
        problems.append(f"alarm_max_zero_std must be in (0, 1], got {args.alarm_max_zero_std}")
    for name in ("alarm_format_drop", "alarm_no_box_rise"):
        if getattr(args, name) <= 0:
            problems.append(f"{name} must be > 0, got {getattr(args, name)}")
    return problems


def _is_training_record(record: dict) -> bool:
    return "train_runtime" not in record and not any(str(k).startswith("eval_") for k in record)


def metric_series(records: Iterable[dict], metric: str) -> list[tuple[int, float]]:
    """(step, value) of every training record holding a finite `metric`; the last record of a step wins (a
    resumed run logs again the steps its killed predecessor logged after the checkpoint)."""
    by_step: dict[int, float] = {}
    for record in records:
        if not _is_training_record(record):
            continue
        value = record.get(metric)
        if isinstance(value, (int, float)) and math.isfinite(float(value)):
            by_step[int(record.get("step", 0))] = float(value)
    return sorted(by_step.items())


def _window_means(values: Sequence[float], window: int) -> list[float | None]:
    out: list[float | None] = []
    total = 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / window if i + 1 >= window else None)
    return out


def _conditions(alarm: Alarm, means: list[float | None], settings: AlarmSettings) -> list[tuple[bool, float]]:
    """(fires, threshold) at each point of the series (False before the first full window)."""
    out: list[tuple[bool, float]] = []
    first = next((m for m in means if m is not None), None)
    best = low = None
    for m in means:
        if m is None:
            out.append((False, math.nan))
            continue
        if alarm.name == "one_round_collapse":
            out.append((m <= settings.min_turns, settings.min_turns))
        elif alarm.name == "length_collapse":
            limit = settings.length_ratio * first
            out.append((m < limit, limit))
        elif alarm.name == "no_signal":
            out.append((m >= settings.max_zero_std, settings.max_zero_std))
        elif alarm.name == "format_drop":
            limit = best - settings.format_drop if best is not None else -math.inf
            out.append((m <= limit, limit))
            best = m if best is None else max(best, m)
        elif alarm.name == "no_box_rise":
            limit = low + settings.no_box_rise if low is not None else math.inf
            out.append((m >= limit, limit))
            low = m if low is None else min(low, m)
        else:  # pragma: no cover - ALARMS and this function are edited together
            raise ValueError(f"unknown alarm {alarm.name}")
    return out


def scan(records: Sequence[dict], settings: AlarmSettings | None = None) -> list[AlarmEvent]:
    """Every firing over a run's logged history (metrics.jsonl records or `TrainerState.log_history`), in step
    order: the steps where an alarm's condition became true."""
    settings = settings or AlarmSettings()
    events = []
    for alarm in ALARMS:
        series = metric_series(records, alarm.metric)
        means = _window_means([v for _, v in series], settings.window)
        armed, clear = True, 0
        for (step, _), mean, (fires, threshold) in zip(series, means, _conditions(alarm, means, settings)):
            clear = 0 if fires else clear + 1
            if not armed and clear >= settings.window:  # re-armed after a whole window without the condition
                armed = True
            if fires and armed:
                armed = False
                relation = (
                    "<="
                    if alarm.name in ("one_round_collapse", "format_drop")
                    else ("<" if alarm.name == "length_collapse" else ">=")
                )
                message = (
                    f"ALARM {alarm.name} at step {step}: {alarm.what} {mean:.3f} over the last "
                    f"{settings.window} steps {relation} {threshold:.3f}: {alarm.meaning}"
                )
                events.append(
                    AlarmEvent(
                        alarm.name, step, alarm.metric, round(mean, 6), round(threshold, 6), settings.window, message
                    )
                )
    return sorted(events, key=lambda e: (e.step, e.alarm))


def new_events(history: Sequence[dict], settings: AlarmSettings) -> list[AlarmEvent]:
    """The firings at the latest training step of `history` (what the trainer reports after each log)."""
    steps = [int(r.get("step", 0)) for r in history if _is_training_record(r)]
    if not steps:
        return []
    last = steps[-1]
    return [e for e in scan(history, settings) if e.step == last]


def append_events(output_dir: str | Path, events: Sequence[AlarmEvent]) -> Path:
    path = Path(output_dir) / ALARMS_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        for event in events:
            fh.write(event.to_json() + "\n")
    return path


def read_events(output_dir: str | Path) -> list[AlarmEvent]:
    """The firings recorded in a run folder's alarms.jsonl (a step logged twice across a resume: last wins)."""
    path = Path(output_dir) / ALARMS_NAME
    if not path.is_file():
        return []
    found: dict[tuple[str, int], AlarmEvent] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            data = json.loads(line)
            found[(data["alarm"], int(data["step"]))] = AlarmEvent(**data)
    return sorted(found.values(), key=lambda e: (e.step, e.alarm))


def report_line(events: Sequence[AlarmEvent], steps: int | None = None) -> str:
    """One line for the run's report: which alarms fired, where, and at what value."""
    if not events:
        span = f" over {steps} steps" if steps else ""
        return f"Collapse alarms: none{span} (trainer/alarms.py: turns, length, zero-std share, format, no-box rate)."
    parts = [
        f"`{e.alarm}` at step {e.step} ({BY_NAME[e.alarm].what} {e.value:.3f}, threshold {e.threshold:.3f})"
        for e in events
    ]
    return "Collapse alarms: " + "; ".join(parts) + " (alarms.jsonl; trainer/alarms.py)."
