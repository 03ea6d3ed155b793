"""Evaluate a model on VisCoT (SPEC §7) or RefCOCO: infer -> judge -> score -> table, each stage resumable.

    python -m ground_r1.cli.evaluate --protocol ground_r1 --model_path CKPT --data_path viscot_eval.jsonl \\
        --image_root /data/Visual-CoT --image_path_prefix /home/meng/data/Visual-CoT --output_dir out/eval
    torchrun --nproc_per_node 8 -m ground_r1.cli.evaluate ...            # data-parallel inference

Stages (``--stages``, default all; each reads the previous stage's file in ``--output_dir``):

- ``infer``: predictions of this process's share into ``predictions.rank{r}.jsonl``; finished items are
  skipped on a rerun; rank 0 merges into ``predictions.jsonl``. Only this stage uses several processes.
- ``judge`` (VisCoT): the LLM judge (SPEC §7) over an OpenAI-compatible endpoint (``OPENAI_MODEL``,
  ``OPENAI_BASE_URL``, ``OPENAI_API_KEY``) into ``judgments.jsonl``, resumable, cached. No endpoint configured
  (or ``--no_judge``): NOTHING WAS JUDGED, said loudly, and the table holds the rule-based scores.
- ``score``: ``scores.jsonl`` (VisCoT: judge + rule score per item) or ``refcoco_scores.jsonl`` (IoU, hit).
- ``table``: ``table.md`` + ``table.csv``, and the Markdown printed on stdout. ``--compare_to RUN_DIR`` puts
  another run (e.g. the baseline) in the left column group.

Every record of the data file is read and validated before inference. A record that cannot be evaluated is
skipped (``skipped_records.jsonl`` in ``--output_dir`` names it as ``file:line: field: why``; the table counts
it); a record whose evidence box is unusable is evaluated, its box metric n/a (``evidence_box_issues.jsonl``).

Exit status (:mod:`ground_r1.evaluation.outcome`, README "Exit codes"): 0 every record evaluated (and judged
where a judge is configured); 1 a configuration error (bad path, a local MODEL_PATH that is not there, judge key
refused with HTTP 401/403; the message names it); 2 a usage error (an unknown or misspelt flag: no prefix
matching); 3 some items could not be judged (endpoint down past its retries, unparseable replies): the
table says so and refuses an AVG built on too few items, and the same command again judges only those items;
4 records skipped or predictions failed (the rest is in the table). Several: the lowest non-zero code.

Rollout settings (pixel limits, turns, tokens per turn, crop and box rules) and the rule column's letter rule: a
checkpoint saved by GRPO training carries the ones it was trained with (``rollout_settings.json``) and they are used
unless a flag sets them (``--no-checkpoint_settings`` ignores the file); the log's first lines and the table say
where each value came from. Without such a file: the SPEC §2 values (max_pixels 401408, 512 new tokens per turn,
5 turns, box_parse tag_first, letter_rule spec).

Defaults with nothing given: the tiny random model (max_pixels 12544, 32 new tokens per turn) and a built-in
synthetic set (8 VisCoT-format items, or 4 RefCOCO-format objects x 2 expressions) — a CPU demo of every stage.
A model given with the built-in set keeps its own settings (512 new tokens per turn without a settings file).
"""

from __future__ import annotations

import argparse
import datetime
import difflib
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ground_r1.boxes import BOX_PARSE_RULES
from ground_r1.data.images import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    add_max_image_pixels_argument,
    set_max_image_pixels,
)
from ground_r1.evaluation import identity, inference, outcome, refcoco, scores, tables
from ground_r1.evaluation.judge import Judge, JudgeAuthenticationError, JudgeConfig, load_judgments
from ground_r1.evaluation.predictions import load_predictions
from ground_r1.models.loading import check_model_path
from ground_r1.prompt import BASELINE_TEMPLATES
from ground_r1.rewards.accuracy import DEFAULT_LETTER_RULE, LETTER_RULES
from ground_r1.rewards.registry import build_registry
from ground_r1.rollout.sampling import EVAL_GREEDY_SAMPLING

logger = logging.getLogger("ground_r1.evaluate")

STAGES = ("infer", "judge", "score", "table")
EXIT_UNJUDGED = outcome.EXIT_UNJUDGED  # every stage ran, but some items failed judging: a rerun completes them
JUDGMENTS_NAME = "judgments.jsonl"
DEMO_MAX_PIXELS = 12544  # the tiny model's 112-px view (ground_r1.demo.tiny)
DEMO_MAX_NEW_TOKENS = 32
DEMO_VISCOT_ITEMS = 8
DEMO_REFCOCO_OBJECTS = 4


# ------------------------------------------------------------------------------ processes (torchrun)


@dataclass(frozen=True)
class DistContext:
    """This process's place in a ``torchrun`` launch (RANK / WORLD_SIZE / LOCAL_RANK; 0 / 1 / 0 without one)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self) -> str:
        import torch

        return f"cuda:{self.local_rank}" if torch.cuda.is_available() else "cpu"


CHECKPOINT_DEFAULT = "the checkpoint's rollout_settings.json, else"


def add_decoding_arguments(p, demo_tokens: str = "the demo model") -> None:
    """Model and decoding flags shared by every evaluation CLI (VisCoT/RefCOCO here, general benchmarks). The
    rollout flags default to None: unset, they take the checkpoint's settings (:func:`apply_rollout_settings`).
    ``demo_tokens`` says when the demo's 32-token budget applies."""
    p.add_argument(
        "--max_new_tokens",
        type=int,
        default=None,
        help=f"new tokens per turn (default: {CHECKPOINT_DEFAULT} 512, SPEC §2; {DEMO_MAX_NEW_TOKENS} "
        f"for {demo_tokens})",
    )
    p.add_argument(
        "--repetition_penalty",
        type=float,
        default=EVAL_GREEDY_SAMPLING.repetition_penalty,
        help="greedy decoding's repetition penalty (SPEC §2)",
    )
    p.add_argument(
        "--max_turns",
        type=int,
        default=None,
        help=f"ground_r1: assistant turns per item (default: {CHECKPOINT_DEFAULT} 5, SPEC §2)",
    )
    p.add_argument(
        "--max_completion_length",
        type=int,
        default=None,
        help=f"ground_r1: total token budget (default: {CHECKPOINT_DEFAULT} none)",
    )
    p.add_argument(
        "--min_pixels",
        type=int,
        default=None,
        help=f"image processor min_pixels (default: {CHECKPOINT_DEFAULT} {DEFAULT_MIN_PIXELS})",
    )
    p.add_argument(
        "--max_pixels",
        type=int,
        default=None,
        help=f"image processor max_pixels (default: {CHECKPOINT_DEFAULT} {DEFAULT_MAX_PIXELS}; "
        f"{DEMO_MAX_PIXELS} for the demo model)",
    )
    p.add_argument(
        "--min_crop_size",
        type=int,
        default=None,
        help=f"ground_r1/ground_sft: crops widened to this many pixels (default: {CHECKPOINT_DEFAULT} 28)",
    )
    p.add_argument(
        "--max_aspect_ratio",
        type=float,
        default=None,
        help=f"ground_r1: boxes at this aspect ratio or more are rejected (default: {CHECKPOINT_DEFAULT} 200)",
    )
    p.add_argument(
        "--crop_fallback",
        choices=("full_image", "end"),
        default=None,
        help=f"ground_r1: no valid box -> full_image or end (default: {CHECKPOINT_DEFAULT} full_image)",
    )
    p.add_argument(
        "--box_parse",
        default=None,
        choices=BOX_PARSE_RULES,
        help="ground_r1/ground_sft box rule (SPEC §2): tag_first (ours: inside <box> first, then the "
        "release's rule) or release (the release's rule alone; the release preset's box_parse) "
        f"(default: {CHECKPOINT_DEFAULT} tag_first)",
    )
    p.add_argument(
        "--checkpoint_settings",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="use the rollout settings a GRPO checkpoint was trained with (rollout_settings.json) for "
        "every flag above not given (and --letter_rule, where the CLI has it)",
    )
    p.add_argument("--dtype", default="auto", help="auto (bf16 on GPU, fp32 on CPU), bf16, fp16, fp32")
    p.add_argument("--attn_implementation", default="auto", help="auto, sdpa, flash_attention_2, eager")


def apply_rollout_settings(args: argparse.Namespace, demo_pixels: bool, demo_tokens: bool) -> None:
    """Fill every rollout flag not given: the checkpoint's settings (rollout_settings.json), else the demo's 112-px
    view (``demo_pixels``) and 32-token turns (``demo_tokens``), else SPEC §2's. Logs one header line naming each
    value's source.

    Raises:
        RolloutSettingsError: the checkpoint's settings file cannot be used (named).
    """
    from ground_r1.rollout_settings import (
        EVAL_FLAGS,
        checkpoint_coordinates,
        describe,
        read_settings,
        resolve_eval_settings,
    )

    checkpoint = read_settings(args.model_path) if args.checkpoint_settings else None
    demo = {
        **({"max_pixels": DEMO_MAX_PIXELS} if demo_pixels else {}),
        **({"max_new_tokens_per_turn": DEMO_MAX_NEW_TOKENS} if demo_tokens else {}),
    }
    mine = {flag: key for flag, key in EVAL_FLAGS.items() if hasattr(args, flag)}  # letter_rule: VisCoT's CLI only
    flags = {key: getattr(args, flag) for flag, key in mine.items()}
    values, sources = resolve_eval_settings(flags, checkpoint, demo, keys=tuple(mine.values()))
    for flag, key in mine.items():
        setattr(args, flag, values[key])
    args.settings_sources = sources
    # The box convention training used (a checkpoint written with a model family records it); None: the family's.
    args.coordinates = checkpoint_coordinates(args.model_path) if checkpoint is not None else None
    logger.info("%s", describe(values, sources, args.model_path))


def init_distributed(timeout_minutes: float = 600.0) -> DistContext:
    """Read the launch environment; with WORLD_SIZE > 1 start a process group (nccl on GPUs, else gloo) so
    that rank 0 can wait for every shard before merging. The timeout is long: shards finish at different times."""
    ctx = DistContext(
        int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))
    )
    if ctx.world_size > 1:
        import torch
        import torch.distributed as dist

        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            if backend == "nccl":
                torch.cuda.set_device(ctx.local_rank)
            dist.init_process_group(backend, timeout=datetime.timedelta(minutes=timeout_minutes))
    return ctx


def barrier(ctx: DistContext) -> None:
    """Wait for every process (no-op for a single process)."""
    if ctx.world_size > 1:
        import torch.distributed as dist

        dist.barrier()


def shutdown(ctx: DistContext) -> None:
    if ctx.world_size > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


# ------------------------------------------------------------------------------------------ arguments


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ground_r1.cli.evaluate",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument(
        "--protocol",
        required=True,
        choices=tuple(identity.PROTOCOLS),
        help="ground_r1: multi-round rollout (SPEC §2); baseline: one turn; ground_sft: the two turns of "
        "SPEC §8; refcoco: grounding Acc@0.5",
    )
    p.add_argument("--model_path", default=None, help="checkpoint folder (default: the tiny random model, a demo)")
    p.add_argument(
        "--data_path",
        default=None,
        help="VisCoT records JSONL (SPEC §6) or RefCOCO file; default: a built-in synthetic set",
    )
    p.add_argument("--image_root", default=None, help="image folder (default: the data file's folder)")
    p.add_argument(
        "--image_path_prefix",
        default=None,
        help="absolute prefix in the data's image paths to replace by --image_root (release files)",
    )
    p.add_argument("--output_dir", required=True, help="where every stage writes (reuse it to resume)")
    p.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset of " + ",".join(STAGES))
    p.add_argument("--batch_size", type=int, default=8, help="items per generate call (per process)")
    p.add_argument(
        "--prompt_class",
        default="only_question",
        choices=list(BASELINE_TEMPLATES),
        help="baseline prompt: only_question (the question as is), simply_answer ('Please only give "
        "the final answer of the Question:{q}'), basic_grpo (think/answer tags)",
    )
    p.add_argument(
        "--max_items",
        "--max_items_per_dataset",
        dest="max_items",
        type=int,
        default=None,
        help="at most N items per sub-dataset (RefCOCO: objects per split); 0 = all. Default: 150 for "
        "VisCoT (SPEC §7), all for RefCOCO, the demo's size for the built-in set. "
        "--max_items_per_dataset is the old name",
    )
    add_decoding_arguments(p, demo_tokens="the demo model (no --model_path)")
    p.add_argument(
        "--skip_bad_records",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="skip records that cannot be evaluated (each listed in OUTPUT_DIR/skipped_records.jsonl, "
        "counted in the table; exit 4); --no-skip_bad_records stops with every problem listed",
    )
    add_max_image_pixels_argument(p)
    p.add_argument(
        "--letter_rule",
        default=None,
        choices=LETTER_RULES,
        help="rule column's option-letter rule for v7w/gqa/openimages (SPEC §3), as the training config "
        "key letter_rule: spec (SPEC rule + bare-letter fallback) or release (the release's full "
        f"rule) (default: {CHECKPOINT_DEFAULT} {DEFAULT_LETTER_RULE})",
    )
    p.add_argument(
        "--judge",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the LLM judge when an endpoint is configured",
    )
    p.add_argument("--judge_model", default=None, help="judge model (default: $OPENAI_MODEL, else gpt-4o-mini)")
    p.add_argument("--judge_base_url", default=None, help="judge endpoint (default: $OPENAI_BASE_URL)")
    p.add_argument("--judge_concurrency", type=int, default=None, help="judge requests in flight")
    p.add_argument("--judge_cache", default=None, help="judge cache JSONL (default: OUTPUT_DIR/judge_cache.jsonl)")
    p.add_argument(
        "--max_failure_share",
        type=float,
        default=tables.DEFAULT_MAX_FAILURE_SHARE,
        help="refuse the AVG when more than this share of its items failed",
    )
    p.add_argument("--allow_failures", action="store_true", help="print the AVG whatever the failure share")
    p.add_argument("--compare_to", default=None, help="another run's output_dir, shown beside this one")
    p.add_argument("--label", default=None, help="column label of this run (default: from its settings)")
    p.add_argument(
        "--scripted_policy",
        default=None,
        help="tests only: turns come from a scripted policy (a name of ground_r1.demo.scripted.POLICIES or "
        "pkg.mod:func) instead of sampling, so boxes, crops and later turns happen on a random model; "
        "a key of the run's identity (never mixed with a model's predictions) and named in the table "
        "header",
    )
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    return p


def parse_stages(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    for name in names:
        if name not in STAGES:
            close = difflib.get_close_matches(name, STAGES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SystemExit(f"error: unknown stage {name!r}{hint}; valid: {', '.join(STAGES)}")
    return names


def apply_demo_defaults(args: argparse.Namespace) -> None:
    """Resolve the defaults that depend on whether the demo model / built-in data are used."""
    demo_model = args.model_path is None
    if demo_model:
        from ground_r1.demo.tiny import ensure_tiny_model

        args.model_path = str(ensure_tiny_model())
        logger.warning("no --model_path: evaluating the tiny random model %s (a demo, not a result)", args.model_path)
    apply_rollout_settings(args, demo_pixels=demo_model, demo_tokens=demo_model)
    if args.max_items is None:
        if args.data_path is None:
            args.max_items = DEMO_REFCOCO_OBJECTS if args.protocol == "refcoco" else DEMO_VISCOT_ITEMS
        else:
            args.max_items = 0 if args.protocol == "refcoco" else 150


def builtin_data(args: argparse.Namespace, ctx: DistContext) -> str:
    """The built-in synthetic set's path (RefCOCO format written by rank 0 into the output folder)."""
    if args.protocol != "refcoco":
        from ground_r1.demo.synthetic import ensure_default_dataset

        return str(ensure_default_dataset() / "eval.jsonl")
    folder = Path(args.output_dir) / "builtin_refcoco"
    if ctx.is_main:
        refcoco.write_synthetic_refcoco(folder, num_objects=DEMO_REFCOCO_OBJECTS)
    barrier(ctx)
    return str(folder / "refcoco_synthetic.jsonl")


def read_items(args: argparse.Namespace) -> inference.LoadedItems:
    """Every record of the data file read and validated; the items to evaluate (see the module docstring)."""
    limit = args.max_items
    if args.protocol == "refcoco":
        return refcoco.read_refcoco_items(
            args.data_path,
            image_root=args.image_root,
            path_prefix=args.image_path_prefix,
            max_objects_per_split=limit,
            skip_bad_records=args.skip_bad_records,
        )
    return inference.read_viscot_items(
        args.data_path,
        image_root=args.image_root,
        path_prefix=args.image_path_prefix,
        max_items_per_dataset=limit,
        min_pixels=args.min_pixels,
        max_pixels=args.max_pixels,
        skip_bad_records=args.skip_bad_records,
    )


def load_items(args: argparse.Namespace) -> list[inference.EvalItem]:
    return read_items(args).items


def write_records_report(args: argparse.Namespace, read: inference.LoadedItems) -> outcome.RecordsReport:
    """``skipped_records.jsonl`` (the skipped records, ``file:line: field: why``), ``evidence_box_issues.jsonl``
    (records evaluated with their box metric n/a) and ``records_report.json`` (the counts the table shows)."""
    from ground_r1.data.records import BOX_ISSUES_NAME, SKIPPED_RECORDS_NAME, write_issues

    out = Path(args.output_dir)
    loaded = read.loaded
    for name, issues in ((SKIPPED_RECORDS_NAME, loaded.issues), (BOX_ISSUES_NAME, loaded.box_notes)):
        if issues:
            write_issues(issues, out / name)
        elif (out / name).exists():
            (out / name).unlink()  # a stale list from an earlier run of other data
    evaluated = len({it.fields.get("object_key", it.key) for it in read.items})
    report = outcome.RecordsReport(
        file=str(args.data_path),
        records_read=read.records_read,
        skipped=loaded.skipped,
        skipped_by_field=outcome.reason_counts(loaded.issues),
        evaluated=evaluated,
        box_issues=loaded.records_with_box_issues,
    )
    report.write(out)
    log = logger.warning if loaded.skipped else logger.info
    log("%s%s", report.line(), f"; skipped records listed in {out / SKIPPED_RECORDS_NAME}" if loaded.skipped else "")
    return report


def inference_config(args: argparse.Namespace) -> identity.InferenceConfig:
    """The run's settings (:func:`ground_r1.evaluation.identity.inference_config`): VisCoT's or RefCOCO's."""
    benchmark, version = (
        (refcoco.REFCOCO_BENCHMARK, refcoco.REFCOCO_VERSION)
        if args.protocol == "refcoco"
        else (inference.VISCOT_BENCHMARK, inference.VISCOT_VERSION)
    )
    return identity.inference_config(
        args, protocol=args.protocol, benchmark=benchmark, benchmark_version=version, prompt_class=args.prompt_class
    )


def stage_infer(args: argparse.Namespace, ctx: DistContext) -> None:
    from ground_r1.models.loading import load_model, load_processor

    config = inference_config(args)
    read = read_items(args)
    items = read.items
    if ctx.is_main:
        write_records_report(args, read)

    def make_engine() -> inference.Engine:
        processor = load_processor(args.model_path, min_pixels=args.min_pixels, max_pixels=args.max_pixels)
        model = load_model(args.model_path, dtype=args.dtype, attn_implementation=args.attn_implementation)
        engine = inference.Engine(model.to(ctx.device()).eval(), processor, config)
        if args.scripted_policy:
            from ground_r1.demo.scripted import ScriptedGenerator, resolve_policy

            engine.generator = ScriptedGenerator(
                engine.codec, resolve_policy(args.scripted_policy), model=engine.generator.model
            )
        return engine

    summary = inference.run_inference(
        items,
        make_engine,
        args.output_dir,
        config,
        rank=ctx.rank,
        world_size=ctx.world_size,
        progress=not args.no_progress,
    )
    logger.info("rank %d: %s", ctx.rank, summary)
    barrier(ctx)
    if ctx.is_main:
        inference.finish(args.output_dir, items)


def stage_judge(args: argparse.Namespace) -> int:
    """Judge the predictions; returns how many items are left unjudged (failed or unparseable)."""
    out = Path(args.output_dir)
    if not args.judge:
        logger.warning("NOTHING WAS JUDGED: the judge stage was skipped (--no_judge)")
        return 0
    overrides = {
        k: v
        for k, v in (
            ("model", args.judge_model),
            ("base_url", args.judge_base_url),
            ("concurrency", args.judge_concurrency),
        )
        if v is not None
    }
    config = JudgeConfig.from_env(**overrides)
    if not config.is_configured():
        logger.warning(
            "NOTHING WAS JUDGED: no judge endpoint configured (set OPENAI_BASE_URL and/or "
            "OPENAI_API_KEY, and OPENAI_MODEL); the table will hold rule-based scores only"
        )
        return 0
    items = scores.judge_items(load_predictions(out))
    logger.info("judging %d predictions with %s", len(items), config.describe())
    cache = args.judge_cache or out / "judge_cache.jsonl"
    report = Judge(config).judge_items(items, out / JUDGMENTS_NAME, cache_path=cache)
    logger.info("%s", report.summary())
    return report.failed + report.unparseable


def stage_score(args: argparse.Namespace) -> None:
    out = Path(args.output_dir)
    predictions = load_predictions(out)
    if args.protocol == "refcoco":
        scores.write_scores([refcoco.score_prediction(p) for p in predictions], out / refcoco.SCORES_NAME)
        return
    judged = out / JUDGMENTS_NAME
    judgments = load_judgments(judged) if judged.is_file() else None
    registry = build_registry(letter_rule=letter_rule(args))
    scores.write_scores(scores.score_predictions(predictions, judgments, registry), out / scores.SCORES_NAME)


def letter_rule(args: argparse.Namespace) -> str:
    """The rule column's option-letter rule: ``--letter_rule``, else the checkpoint's (the one training rewarded
    with, rollout_settings.json), else the default; resolved here too so a score stage run alone agrees with a
    whole run."""
    if args.letter_rule is None:
        from ground_r1.rollout_settings import read_settings

        settings = read_settings(args.model_path) if args.checkpoint_settings else None
        args.letter_rule = (settings or {}).get("letter_rule", DEFAULT_LETTER_RULE)
    return args.letter_rule


def run_label(run_dir: Path, fallback: str) -> str:
    config_file = run_dir / identity.RUN_CONFIG_NAME
    if not config_file.is_file():
        return fallback
    config = json.loads(config_file.read_text())
    return config["protocol"] + (f"[{config['prompt_class']}]" if config.get("prompt_class") else "")


def records_note(out: Path) -> str:
    """The table's line on the data file: records read, evaluated, skipped (and why), box metric n/a."""
    report = outcome.load_report(out)
    if report is None:
        return ""
    note = f"- records: {report.line()}"
    if report.skipped:
        note += "; each skipped record is listed in skipped_records.jsonl"
    if report.box_issues:
        note += "; the unusable evidence boxes in evidence_box_issues.jsonl"
    return note + "\n"


def stage_table(args: argparse.Namespace) -> str:
    out = Path(args.output_dir)
    label = args.label or run_label(out, args.protocol)
    from ground_r1.rollout_settings import run_header

    header = [line for line in (run_header(out),) if line]
    if args.protocol == "refcoco":
        results = refcoco.accuracy_by_split(
            scores.load_scores(out / refcoco.SCORES_NAME, required=("key", "dataset", "hit"))
        )
        markdown = refcoco.render_markdown(results, label, header=header) + records_note(out)
        (out / "table.md").write_text(markdown, encoding="utf-8")
        (out / "table.csv").write_text(refcoco.render_csv(results), encoding="utf-8")
        return markdown
    runs = [
        tables.summarize(
            scores.load_scores(out / scores.SCORES_NAME), label, args.max_failure_share, args.allow_failures
        )
    ]
    if args.compare_to:
        other = Path(args.compare_to)
        other_label = run_label(other, other.name)
        if other_label == label:
            other_label, label = f"{other_label} ({other.name})", f"{label} ({out.name})"
            runs[0].label = label
        runs.insert(
            0,
            tables.summarize(
                scores.load_scores(other / scores.SCORES_NAME), other_label, args.max_failure_share, args.allow_failures
            ),
        )
        header = [f"{other_label}: {line}" for line in (run_header(other),) if line] + [
            f"{label}: {line}" for line in header
        ]
    md_path, _ = tables.write_tables(runs, out, header=header)
    note = records_note(out)
    if note:
        md_path.write_text(md_path.read_text(encoding="utf-8") + note, encoding="utf-8")
    return md_path.read_text(encoding="utf-8")


def incomplete_count(args: argparse.Namespace) -> int:
    """Skipped records (``records_report.json``) plus predictions that failed (an unreadable image mid-run)."""
    out = Path(args.output_dir)
    report = outcome.load_report(out)
    skipped = report.skipped if report is not None else 0
    predicted = load_predictions(out) if (out / "predictions.jsonl").is_file() else []
    errors = sum(1 for p in predicted if p.get("status") != "ok")
    if errors:
        logger.warning(
            "%d prediction(s) failed (see their 'error' in predictions.jsonl); the table leaves them out", errors
        )
    return skipped + errors


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stages = parse_stages(args.stages)
    ctx = init_distributed()
    logging.basicConfig(
        level=logging.INFO if ctx.is_main else logging.WARNING,
        format=f"%(asctime)s %(levelname)s [rank {ctx.rank}] %(name)s: %(message)s",
    )
    try:
        check_model_path(args.model_path)  # a missing local folder is named before anything loads (issue 17)
        set_max_image_pixels(args.max_image_pixels)
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
        if "infer" in stages:
            apply_demo_defaults(args)
            if args.data_path is None:
                args.data_path = builtin_data(args, ctx)
            stage_infer(args, ctx)
        if not ctx.is_main:
            return 0
        unjudged = 0
        if "judge" in stages and args.protocol != "refcoco":
            unjudged = stage_judge(args)
        if "score" in stages:
            stage_score(args)
        if "table" in stages:
            print(stage_table(args), flush=True)
        incomplete = incomplete_count(args)
    except JudgeAuthenticationError as exc:
        logger.error("%s (exit %d)", exc, outcome.EXIT_CONFIG_ERROR)
        return outcome.EXIT_CONFIG_ERROR
    except (FileNotFoundError, ValueError) as exc:
        logger.error("%s", exc)
        return outcome.EXIT_CONFIG_ERROR
    finally:
        shutdown(ctx)
    code = outcome.exit_code(unjudged=unjudged, incomplete=incomplete)
    if unjudged:
        logger.error(
            "%d item(s) could not be judged (endpoint down or unparseable replies): the table says "
            "so; rerun the same command to judge only those items (exit %d)",
            unjudged,
            code,
        )
    if incomplete:
        logger.warning(
            "%d record(s) skipped or failed (records_report.json, skipped_records.jsonl); the rest is in the table%s",
            incomplete,
            f" (exit {code})" if code == outcome.EXIT_INCOMPLETE else "",
        )
    return code


if __name__ == "__main__":
    sys.exit(main())
