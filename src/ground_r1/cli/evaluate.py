"""Evaluate a model on any registered benchmark (SPEC §7): read -> infer -> judge -> score -> table, each resumable.

The one evaluation entry point: VisCoT (the paper's main table), RefCOCO, the general benchmarks and the zoom-in
benchmarks are specs of one registry (``ground_r1.evaluation.benchmarks``) and run through one pipeline
(``ground_r1.evaluation.pipeline``). ``python -m ground_r1.cli.evaluate_general`` is this command with
``--benchmarks all`` as its default.

    python -m ground_r1.cli.evaluate --protocol ground_r1 --model_path CKPT --data_path viscot_eval.jsonl \\
        --image_root /data/Visual-CoT --image_path_prefix /home/meng/data/Visual-CoT --output_dir out/eval
    python -m ground_r1.cli.evaluate --protocol refcoco --data_path RefCOCO_eval_subset_1000.jsonl ...
    python -m ground_r1.cli.evaluate --protocol baseline --benchmarks all --dataset_root Ground-R1/eval_general_dataset/dataset \\
        --image_root /data/LVLM_benchmarks --output_dir out/general          # the release's folder layout
    torchrun --nproc_per_node 8 -m ground_r1.cli.evaluate ...            # data-parallel inference

Benchmarks (``--benchmarks``): names of the registry (case and punctuation ignored), ``all`` (SPEC §7's general
set), ``zoom`` (V*, HR-Bench, TreeBench) or ``grounding`` (VisCoT, RefCOCO); not given, the one benchmark of the
``eval/`` launchers: RefCOCO for ``--protocol refcoco``, else VisCoT.
Data: ``--data_path`` (one benchmark's file) or ``--dataset_root`` (a folder of the release's files, ``{name}.jsonl``
with images in ``{name}/``, or ``--image_root`` = the release's ``LVLM_benchmarks`` folder with ``IMAGE_ROOT/{name}/``).
Folders: a run of one benchmark without ``--benchmarks``, or with ``--data_path``, writes into ``--output_dir``
itself; named benchmarks each get ``OUTPUT_DIR/{name}/`` and a ``summary.md`` across them.

Protocols (one vocabulary; each benchmark says which it supports): ``baseline`` (``direct`` is another name for
it) one turn; ``ground_r1`` the multi-round rollout (SPEC §2); ``ground_sft`` the two fixed turns of SPEC §8;
``refcoco`` Qwen's grounding prompt (RefCOCO's); ``likelihood`` / ``ground_r1_likelihood`` V*'s option scoring.

Stages (``--stages``, default all; each reads the previous stage's files):

- ``infer``: predictions of this process's share into ``predictions.rank{r}.jsonl``; finished items are
  skipped on a rerun; rank 0 merges into ``predictions.jsonl``. Only this stage uses several processes. A rerun
  with settings that change predictions (pixel limits, protocol, prompt, box rule, model, dtype, benchmark version)
  is refused, each differing setting named.
- ``judge`` (``grade`` is another name for it): the benchmarks judged by an LLM (VisCoT's judge, SPEC §7; MM-Vet's
  grader; HR-Bench's yes/no judge) over an OpenAI-compatible endpoint (``OPENAI_MODEL``, ``OPENAI_BASE_URL``,
  ``OPENAI_API_KEY``) into ``judgments.jsonl``, resumable, cached. No endpoint configured (or ``--no-judge``):
  NOTHING WAS JUDGED, said loudly; VisCoT's table holds the rule-based scores, MM-Vet's row n/a.
- ``score``: per-item scores (``scores.jsonl``; RefCOCO ``refcoco_scores.jsonl``; the general benchmarks also
  ``metrics.json``).
- ``table``: VisCoT's and RefCOCO's ``table.md`` + ``table.csv`` (``--compare_to RUN_DIR`` puts another VisCoT run,
  e.g. the baseline, in the left column group), or ``summary.md`` + ``summary.csv``; the Markdown printed on stdout.

Every record of every data file is read and validated before inference. A record that cannot be evaluated is
skipped (``skipped_records.jsonl`` in ``--output_dir`` names it as ``file:line: field: why``; the table counts
it); a record whose evidence box is unusable is evaluated, its box metric n/a (``evidence_box_issues.jsonl``). In a
run of several benchmarks, one whose file cannot be read is reported and the others run.

Exit status (:mod:`ground_r1.evaluation.outcome`, README "Exit codes"): 0 every record evaluated (and judged
where a judge is configured); 1 a configuration error (bad path, a local MODEL_PATH that is not there, an unknown
benchmark, a protocol the benchmark does not support, judge key refused with HTTP 401/403; the message names it);
2 a usage error (an unknown or misspelt flag: no prefix matching); 3 some items could not be judged (endpoint
down past its retries, unparseable replies): the table says so and refuses an AVG built on too few items, and the
same command again judges only those items; 4 records skipped, predictions failed or a benchmark could not run
(the rest is in the table). Several: the lowest non-zero code.

Rollout settings (pixel limits, turns, tokens per turn, crop and box rules) and VisCoT's letter rule: a
checkpoint saved by GRPO training carries the ones it was trained with (``rollout_settings.json``) and they are used
unless a flag sets them (``--no-checkpoint_settings`` ignores the file); the log's first lines and the table say
where each value came from. Without such a file: the SPEC §2 values (max_pixels 401408, 512 new tokens per turn,
5 turns, box_parse tag_first, letter_rule spec).

Defaults with nothing given: the tiny random model (max_pixels 12544) and the built-in synthetic set of each
benchmark (8 VisCoT-format items, 4 RefCOCO-format objects x 2 expressions, one or two records per general
benchmark), with 32 new tokens per turn — a CPU demo of every stage, not a result.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import logging
import sys
from pathlib import Path

from ground_r1.boxes import BOX_PARSE_RULES
from ground_r1.data.images import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    add_max_image_pixels_argument,
    set_max_image_pixels,
)
from ground_r1.evaluation import identity, inference, outcome, pipeline, tables
from ground_r1.evaluation.benchmark_run import ReadOptions, RunOptions
from ground_r1.evaluation.benchmarks import BenchmarkSpec, get_benchmark, list_benchmarks
from ground_r1.evaluation.judge import JudgeAuthenticationError, JudgeConfig
from ground_r1.evaluation.processes import DistContext, barrier, init_distributed, shutdown
from ground_r1.models.loading import check_model_path
from ground_r1.prompt import BASELINE_TEMPLATES
from ground_r1.rewards.accuracy import DEFAULT_LETTER_RULE, LETTER_RULES
from ground_r1.rollout.sampling import EVAL_GREEDY_SAMPLING

logger = logging.getLogger("ground_r1.evaluate")

__all__ = ["DistContext", "barrier", "build_parser", "main"]

STAGES = ("infer", "judge", "score", "table")
STAGE_ALIASES = {"grade": "judge"}  # the general benchmarks' CLI's name for the judge stage
SUITE_NAMES = {"all": "general", "zoom": "zoom", "grounding": "grounding"}
EXIT_UNJUDGED = outcome.EXIT_UNJUDGED  # every stage ran, but some items failed judging: a rerun completes them
DEMO_MAX_PIXELS = 12544  # the tiny model's 112-px view (ground_r1.demo.tiny)
DEMO_MAX_NEW_TOKENS = 32


CHECKPOINT_DEFAULT = "the checkpoint's rollout_settings.json, else"


def add_decoding_arguments(p, demo_tokens: str = "the demo model") -> None:
    """Model and decoding flags of the evaluation CLIs (this one, and the controls). The rollout flags default to
    None: unset, they take the checkpoint's settings (:func:`apply_rollout_settings`). ``demo_tokens`` says when
    the demo's 32-token budget applies."""
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


def apply_rollout_settings(
    args: argparse.Namespace, demo_pixels: bool, demo_tokens: bool, letter_rule: bool = True
) -> None:
    """Fill every rollout flag not given: the checkpoint's settings (rollout_settings.json), else the demo's 112-px
    view (``demo_pixels``) and 32-token turns (``demo_tokens``), else SPEC §2's; ``letter_rule`` too when a
    benchmark of the run scores with it (VisCoT's rule column). Logs one header line naming each value's source.

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
    mine = {flag: key for flag, key in EVAL_FLAGS.items() if flag != "letter_rule" or letter_rule}
    flags = {key: getattr(args, flag) for flag, key in mine.items()}
    values, sources = resolve_eval_settings(flags, checkpoint, demo, keys=tuple(mine.values()))
    for flag, key in mine.items():
        setattr(args, flag, values[key])
    args.settings_sources = sources
    # The box convention training used (a checkpoint written with a model family records it); None: the family's.
    args.coordinates = checkpoint_coordinates(args.model_path) if checkpoint is not None else None
    logger.info("%s", describe(values, sources, args.model_path))


# ------------------------------------------------------------------------------------------ arguments


def build_parser(prog: str = "python -m ground_r1.cli.evaluate", default_benchmarks: str | None = None):
    """The evaluation CLI's parser; ``default_benchmarks`` is ``--benchmarks``'s default (``all`` for the
    general benchmarks' alias)."""
    p = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument(
        "--benchmarks",
        default=default_benchmarks,
        help="comma-separated registry names (case and punctuation ignored): "
        + ",".join(list_benchmarks(None))
        + "; or a suite: all (SPEC §7's general set), zoom (the zoom-in benchmarks; DATASET_ROOT = the "
        "benchmark's folder), grounding (viscot, refcoco). Not given: refcoco for --protocol refcoco, else viscot, "
        "written into OUTPUT_DIR itself",
    )
    p.add_argument(
        "--protocol",
        required=True,
        choices=tuple(identity.PROTOCOLS) + tuple(identity.PROTOCOL_ALIASES),
        help="baseline (or direct): one turn, the question (+ the benchmark's answer-format suffix) in the prompt "
        "class; ground_r1: the multi-round rollout (SPEC §2); ground_sft: the two turns of SPEC §8; refcoco: "
        "RefCOCO's grounding prompt (Acc@0.5); likelihood: V*'s official scoring (the option with the lowest "
        "mean token loss; vstar, vstar_hf); ground_r1_likelihood: the crop loop, then the same scoring",
    )
    p.add_argument("--model_path", default=None, help="checkpoint folder (default: the tiny random model, a demo)")
    p.add_argument(
        "--data_path",
        default=None,
        help="one benchmark's file (VisCoT records JSONL, SPEC §6; a RefCOCO file; a general benchmark's JSONL); "
        "default: --dataset_root, else a built-in synthetic set",
    )
    p.add_argument(
        "--dataset_root",
        default=None,
        help="folder holding the release files (MME.jsonl, ...) and, without --image_root, the images "
        "(DATASET_ROOT/{name}/ when it exists, else beside the file)",
    )
    p.add_argument(
        "--image_root",
        default=None,
        help="images: with --data_path, their folder (default: the data file's folder); with --dataset_root, the "
        "release's LVLM_benchmarks folder, images of each benchmark in IMAGE_ROOT/{name}/",
    )
    p.add_argument(
        "--image_path_prefix",
        default=None,
        help="absolute prefix in the data's image paths to replace by --image_root (release files)",
    )
    p.add_argument("--output_dir", required=True, help="where every stage writes (reuse it to resume)")
    p.add_argument(
        "--stages",
        default=",".join(STAGES),
        help="comma-separated subset of " + ",".join(STAGES) + " (grade = judge)",
    )
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
        help="at most N items per benchmark, as each counts them (VisCoT: per sub-dataset; RefCOCO: objects per "
        "split; MMBench: questions with all their rotated copies); 0 = all. Default: the benchmark's (VisCoT 150, "
        "SPEC §7; the others all), the demo's size on the built-in set. --max_items_per_dataset is the old name",
    )
    add_decoding_arguments(p, demo_tokens="the demo model or the built-in demo set")
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
        help="VisCoT's rule column: the option-letter rule for v7w/gqa/openimages (SPEC §3), as the training "
        "config key letter_rule: spec (SPEC rule + bare-letter fallback) or release (the release's full "
        f"rule) (default: {CHECKPOINT_DEFAULT} {DEFAULT_LETTER_RULE})",
    )
    p.add_argument(
        "--judge",
        "--grade",
        dest="judge",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the judge of the judged benchmarks when an endpoint is configured (--grade is another name)",
    )
    p.add_argument(
        "--judge_model",
        default=None,
        help="judge model (default: $OPENAI_MODEL, else gpt-4o-mini); the table names it. MM-Vet's official "
        "evaluator used gpt-4-0613, lmms-eval 0.7.3 gpt-4o-2024-11-20 (docs/metrics.md)",
    )
    p.add_argument("--judge_base_url", default=None, help="judge endpoint (default: $OPENAI_BASE_URL)")
    p.add_argument("--judge_concurrency", type=int, default=None, help="judge requests in flight")
    p.add_argument(
        "--judge_max_tokens",
        type=int,
        default=None,
        help="judge reply budget (default: the benchmark's: MM-Vet's official 3, HR-Bench 3, VisCoT 16)",
    )
    p.add_argument("--judge_cache", default=None, help="judge cache JSONL (default: OUTPUT_DIR/judge_cache.jsonl)")
    p.add_argument(
        "--max_failure_share",
        type=float,
        default=tables.DEFAULT_MAX_FAILURE_SHARE,
        help="VisCoT: refuse the AVG when more than this share of its items failed",
    )
    p.add_argument("--allow_failures", action="store_true", help="print the AVG whatever the failure share")
    p.add_argument("--compare_to", default=None, help="VisCoT: another run's output_dir, shown beside this one")
    p.add_argument(
        "--label",
        default=None,
        help="the run's name in the table (default: its protocol and prompt class; a summary: protocol and model)",
    )
    p.add_argument(
        "--scripted_policy",
        default=None,
        help="tests and demos only: every turn comes from this scripted policy (a name of "
        "ground_r1.demo.scripted.POLICIES, e.g. ground_until_limit, which writes boxes, or pkg.mod:func) instead "
        "of the model's generate; part of the predictions' identity (never mixed with a model's predictions) and "
        "named in the table header",
    )
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    return p


def _parse_list(text: str, valid: tuple[str, ...] | None, what: str, aliases: dict[str, str] | None = None):
    names = [(aliases or {}).get(s.strip(), s.strip()) for s in text.split(",") if s.strip()]
    for name in names if valid else ():
        if name not in valid:
            close = difflib.get_close_matches(name, valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SystemExit(f"error: unknown {what} {name!r}{hint}; valid: {', '.join(valid)}")
    return names


def parse_stages(text: str) -> list[str]:
    """The stages named (``grade`` is ``judge``); an unknown one exits 2 with the closest valid name."""
    return _parse_list(text, STAGES, "stage", STAGE_ALIASES)


def benchmark_names(text: str | None, protocol: str = "baseline", demo_data: bool = False) -> list[str]:
    """The benchmarks of a run: not given, the ``eval/`` launchers' one (RefCOCO for the refcoco protocol, else
    VisCoT); ``all`` (or empty) SPEC §7's general set (with ``demo_data``, the built-in demo set: every one with
    ``demo_records``); ``zoom`` / ``grounding`` those suites; else the listed names (checked at load)."""
    if text is None:
        return ["refcoco" if protocol == "refcoco" else "viscot"]
    names = _parse_list(text, None, "benchmark")
    suite = SUITE_NAMES.get(names[0].lower()) if len(names) == 1 else None if names else "general"
    if suite is None:
        return names
    return [n for n in list_benchmarks(suite) if not demo_data or suite != "general" or get_benchmark(n).demo_records]


def check_configuration(args: argparse.Namespace, specs: list[BenchmarkSpec]) -> None:
    """What must hold before any work (exit 1 otherwise): each benchmark supports the protocol, existing folders,
    one benchmark for one data file.

    Raises:
        ValueError: naming the benchmark and the protocols it supports, or the flag and the folder.
    """
    for spec in specs:
        if args.protocol not in spec.supported_protocols():
            if args.protocol in identity.LIKELIHOOD_PROTOCOLS:
                scored = ", ".join(n for n in list_benchmarks(None) if get_benchmark(n).likelihood_rule)
                raise ValueError(
                    f"--protocol {args.protocol} scores options by their likelihood ({scored}); "
                    f"{spec.name} has no likelihood scoring: use {' or '.join(spec.supported_protocols())}"
                )
            raise ValueError(
                f"{spec.name} cannot be evaluated under --protocol {args.protocol}: it supports "
                f"{', '.join(spec.supported_protocols())}"
            )
    if args.data_path is not None and len(specs) != 1:
        raise ValueError(
            f"--data_path is one benchmark's file, but --benchmarks names {len(specs)}: name one, or give "
            "--dataset_root (a folder of the benchmarks' files)"
        )
    folders = (("--dataset_root (DATASET_ROOT)", args.dataset_root), ("--image_root (IMAGE_ROOT)", args.image_root))
    for flag, folder in folders:
        if folder is not None and not Path(folder).is_dir():
            raise ValueError(f"{flag} is not a folder: {folder}")


def apply_demo_defaults(args: argparse.Namespace, specs: list[BenchmarkSpec] | None = None) -> None:
    """The tiny model when none is given; the demo's small view and budgets for the demo model (pixels, tokens)
    or the built-in data (tokens); every other rollout flag not given from the checkpoint (rollout_settings.json)."""
    specs = specs if specs is not None else [get_benchmark(n) for n in benchmark_names(args.benchmarks, args.protocol)]
    demo_model = args.model_path is None
    demo_data = args.data_path is None and args.dataset_root is None
    if demo_model:
        from ground_r1.demo.tiny import ensure_tiny_model

        args.model_path = str(ensure_tiny_model())
        logger.warning("no --model_path: evaluating the tiny random model %s (a demo, not a result)", args.model_path)
    apply_rollout_settings(
        args,
        demo_pixels=demo_model,
        demo_tokens=demo_model or demo_data,
        letter_rule=any(spec.uses_letter_rule for spec in specs),
    )


def inference_config(args: argparse.Namespace, spec: BenchmarkSpec) -> identity.InferenceConfig:
    """The settings one benchmark's predictions depend on (:func:`ground_r1.evaluation.identity.inference_config`):
    the spec's name, version and option seed among them. A likelihood protocol's predictions carry their own
    protocol; the engine running it is built with :func:`engine_config`."""
    return identity.inference_config(
        args,
        protocol=identity.canonical_protocol(args.protocol),
        benchmark=spec.name,
        benchmark_version=spec.version,
        option_seed=spec.option_seed,
        prompt_class=args.prompt_class,
    )


def engine_config(args: argparse.Namespace, spec: BenchmarkSpec) -> identity.InferenceConfig:
    """The settings of the engine that runs ``--protocol`` (the one-turn ``baseline`` for ``likelihood``, the
    ``ground_r1`` rollout for ``ground_r1_likelihood``)."""
    return dataclasses.replace(inference_config(args, spec), protocol=identity.engine_protocol(args.protocol))


def letter_rule(args: argparse.Namespace) -> str:
    """VisCoT's rule column's option-letter rule: ``--letter_rule``, else the checkpoint's (the one training
    rewarded with, rollout_settings.json), else the default; resolved here too so a score stage run alone agrees
    with a whole run."""
    if args.letter_rule is None:
        from ground_r1.rollout_settings import read_settings

        settings = read_settings(args.model_path) if args.checkpoint_settings and args.model_path else None
        args.letter_rule = (settings or {}).get("letter_rule", DEFAULT_LETTER_RULE)
    return args.letter_rule


def judge_config(args: argparse.Namespace, spec: BenchmarkSpec) -> JudgeConfig:
    """The judge's endpoint and budget for one benchmark: flags, else the environment; the reply budget
    ``--judge_max_tokens``, else the benchmark's (MM-Vet's official 3), else the client's."""
    overrides = {
        k: v
        for k, v in (
            ("model", args.judge_model),
            ("base_url", args.judge_base_url),
            ("concurrency", args.judge_concurrency),
            ("max_tokens", args.judge_max_tokens if args.judge_max_tokens is not None else spec.judge_max_tokens),
        )
        if v is not None
    }
    return JudgeConfig.from_env(**overrides)


def run_options(args: argparse.Namespace, specs: list[BenchmarkSpec]) -> RunOptions:
    return RunOptions(
        protocol=args.protocol,
        letter_rule=letter_rule(args) if any(spec.uses_letter_rule for spec in specs) else None,
        label=args.label,
        compare_to=args.compare_to,
        max_failure_share=args.max_failure_share,
        allow_failures=args.allow_failures,
    )


def read_options(args: argparse.Namespace) -> ReadOptions:
    """How the data files are read (``max_items`` None: each benchmark's default, its demo size on the built-in
    set)."""
    return ReadOptions(
        image_path_prefix=args.image_path_prefix,
        max_items=args.max_items,
        min_pixels=args.min_pixels,
        max_pixels=args.max_pixels,
        skip_bad_records=args.skip_bad_records,
    )


def summary_label(args: argparse.Namespace) -> str:
    return args.label or f"{args.protocol}, {Path(args.model_path).name if args.model_path else 'model'}"


# ----------------------------------------------------------------------------------------------- stages


def stage_infer(args: argparse.Namespace, ctx: DistContext, read: pipeline.RunRead) -> None:
    """Predict every benchmark; the model is loaded once, and only if something is left to predict."""
    from ground_r1.models.loading import load_model, load_processor

    engines: list[inference.Engine] = []

    def make_engine() -> inference.Engine:
        if not engines:
            processor = load_processor(args.model_path, min_pixels=args.min_pixels, max_pixels=args.max_pixels)
            model = load_model(args.model_path, dtype=args.dtype, attn_implementation=args.attn_implementation)
            engine = inference.Engine(model.to(ctx.device()).eval(), processor, engine_config(args, read.runs[0].spec))
            if args.scripted_policy:  # tests: boxes, crops and later turns on a random model
                from ground_r1.demo.scripted import ScriptedGenerator, resolve_policy

                engine.generator = ScriptedGenerator(
                    engine.codec, resolve_policy(args.scripted_policy), model=engine.generator.model
                )
            engines.append(engine)
        return engines[0]

    def load_likelihood_model(rollout):
        processor = load_processor(args.model_path, min_pixels=args.min_pixels, max_pixels=args.max_pixels)
        model = getattr(rollout.generator, "model", None) if rollout is not None else None
        if model is None:
            model = load_model(args.model_path, dtype=args.dtype, attn_implementation=args.attn_implementation)
        return model.to(ctx.device()), processor

    pipeline.infer(
        read.runs,
        args.protocol,
        lambda spec: inference_config(args, spec),
        make_engine,
        load_likelihood_model,
        ctx,
        progress=not args.no_progress,
    )


def main(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    args = (parser or build_parser()).parse_args(argv)
    args.protocol = identity.canonical_protocol(args.protocol)
    stages = parse_stages(args.stages)
    ctx = init_distributed()
    logging.basicConfig(
        level=logging.INFO if ctx.is_main else logging.WARNING,
        format=f"%(asctime)s %(levelname)s [rank {ctx.rank}] %(name)s: %(message)s",
    )
    unjudged = incomplete = 0
    read = None
    try:
        check_model_path(args.model_path)  # a missing local folder is named before anything loads (issue 17)
        set_max_image_pixels(args.max_image_pixels)
        demo_data = args.data_path is None and args.dataset_root is None
        specs = [get_benchmark(n) for n in benchmark_names(args.benchmarks, args.protocol, demo_data)]
        check_configuration(args, specs)
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
        apply_demo_defaults(args, specs)
        per_benchmark = args.benchmarks is not None and args.data_path is None
        read = pipeline.read_runs(
            specs,
            args.output_dir,
            per_benchmark=per_benchmark,
            data_path=args.data_path,
            dataset_root=args.dataset_root,
            image_root=args.image_root,
            options=read_options(args),
            ctx=ctx,
            # A rerun of the later stages of one benchmark scoring from its predictions alone reads no data.
            read_data="infer" in stages or per_benchmark or not all(s.scores_from_predictions for s in specs),
        )
        if not read.runs:
            raise ValueError(
                "no benchmark could run (each one's reason is above): check DATASET_ROOT"
                + (" and IMAGE_ROOT" if args.image_root else "")
            )
        skipped = pipeline.write_records_report(read, args.output_dir) if ctx.is_main and read.data_read else 0
        if read.data_read:
            logger.info(
                "benchmarks: %s", ", ".join(f"{r.name} ({len(r.data.items)} items, {r.data.file})" for r in read.runs)
            )
        if "infer" in stages:
            stage_infer(args, ctx, read)
        if not ctx.is_main:
            return 0
        if "judge" in stages:
            cache = args.judge_cache or Path(args.output_dir) / "judge_cache.jsonl"
            unjudged = pipeline.judge(read.runs, args.judge, lambda spec: judge_config(args, spec), cache)
        options = run_options(args, specs)
        rows = pipeline.score(read, options) if "score" in stages or ("table" in stages and read.per_benchmark) else []
        if "table" in stages:
            print(pipeline.table(read, rows, options, args.output_dir, summary_label(args)), flush=True)
        incomplete = pipeline.incomplete_count(read, skipped)
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
    if read is not None and read.failed:
        logger.error("could not run: %s; the other benchmarks finished", ", ".join(read.failed))
    if incomplete:
        logger.warning(
            "%d record(s) skipped or failed, or benchmark(s) that could not run (skipped_records.jsonl); the rest "
            "is in the table%s",
            incomplete,
            f" (exit {code})" if code == outcome.EXIT_INCOMPLETE else "",
        )
    return code


if __name__ == "__main__":
    sys.exit(main())
