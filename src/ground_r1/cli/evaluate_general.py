"""Evaluate a model on the general LVLM benchmarks (SPEC §7): infer -> grade (MM-Vet) -> score -> summary.

    python -m ground_r1.cli.evaluate_general --protocol ground_r1 --model_path CKPT \\
        --dataset_root /data/Ground_R1_General_Eval --output_dir out/general --benchmarks MME,POPE
    python -m ground_r1.cli.evaluate_general ... --dataset_root Ground-R1/eval_general_dataset/dataset \\
        --image_root /data/LVLM_benchmarks                                  # the release's folder layout
    torchrun --nproc_per_node 8 -m ground_r1.cli.evaluate_general ...          # data-parallel inference

Layouts: ours, ``--dataset_root`` holding ``{name}.jsonl`` and the images of each benchmark in ``{name}/``;
or the release's, ``--dataset_root`` = the folder of the JSONL files (its ``eval_general_dataset/dataset``)
and ``--image_root`` = the folder its ``LVLM_benchmarks`` zip unpacks to, images of ``{name}`` in
``IMAGE_ROOT/{name}/``.

Each benchmark gets its own folder ``OUTPUT_DIR/{name}/`` (predictions, MM-Vet grades, ``scores.jsonl``,
``metrics.json``), so each resumes on its own: rerun the same command after a kill. Every record of every
requested file is read and validated (images included) before any inference. A record that cannot be
evaluated is skipped (``OUTPUT_DIR/skipped_records.jsonl``: ``file:line: field: why``, and a count in the
summary); a benchmark whose file cannot be read is reported and the others run.

Exit status (README "Exit codes"): 0 everything evaluated; 1 a configuration error (a local MODEL_PATH that is
not there, unknown benchmark name, missing DATASET_ROOT / IMAGE_ROOT, no benchmark could run, the grader's key
refused with HTTP 401/403); 2 a usage error (an unknown or misspelt flag: no prefix matching); 3 MM-Vet
(or HR-Bench judge) items left ungraded (endpoint down, unparseable replies: the same command grades only those);
4 records skipped, predictions failed or a benchmark could not run (the others are in the summary). Several: the
lowest non-zero.

Stages (``--stages``, default all): ``infer`` (this process's share, rank 0 merges), ``grade`` (MM-Vet's
official LLM grader over ``OPENAI_MODEL`` / ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``, and HR-Bench's optional
official yes/no judge; none set: MM-Vet is NOT GRADED, said loudly, and its row shows n/a), ``score`` (per-item
records, metrics, then ``summary.md`` and ``summary.csv`` in OUTPUT_DIR, the Markdown printed on stdout).

Rollout settings (pixel limits, turns, tokens per turn, crop and box rules): a checkpoint saved by GRPO training carries
the ones it was trained with (``rollout_settings.json``) and they are used unless a flag sets them; the log and
summary.md say where each value came from (``ground_r1.cli.evaluate``).

Defaults with nothing given: the tiny random model and a built-in synthetic set in the release's formats (one
or two items per benchmark, written into OUTPUT_DIR/builtin_general) with small budgets (32 new tokens per turn)
— a CPU demo of every stage, not a result.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import logging
import sys
from pathlib import Path
from typing import Any

from ground_r1.cli.evaluate import (
    DistContext,
    add_decoding_arguments,
    apply_rollout_settings,
    barrier,
    init_distributed,
    shutdown,
)
from ground_r1.data.images import add_max_image_pixels_argument, set_max_image_pixels
from ground_r1.evaluation import general, identity, inference, outcome
from ground_r1.evaluation.benchmarks import get_benchmark, list_benchmarks
from ground_r1.evaluation.benchmarks.mmvet import MMVET_GRADER_MAX_TOKENS
from ground_r1.evaluation.judge import JudgeAuthenticationError, JudgeConfig, load_judgments
from ground_r1.evaluation.predictions import load_predictions
from ground_r1.models.loading import check_model_path
from ground_r1.rollout_settings import run_header

logger = logging.getLogger("ground_r1.evaluate_general")

STAGES = ("infer", "grade", "score")
DEMO_MAX_PIXELS = 12544
DEMO_MAX_NEW_TOKENS = 32
SUMMARY_MD, SUMMARY_CSV = "summary.md", "summary.csv"

write_demo_dataset = general.write_demo_dataset  # the built-in demo set: each spec's demo_records


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ground_r1.cli.evaluate_general",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument(
        "--benchmarks",
        default="all",
        help="comma-separated names (case and punctuation ignored), or 'all' (SPEC §7's set): "
        + ",".join(list_benchmarks())
        + "; or 'zoom', the zoom-in benchmarks (DATASET_ROOT = the "
        "benchmark's folder): " + ",".join(list_benchmarks("zoom")),
    )
    p.add_argument(
        "--protocol",
        required=True,
        choices=general.PROTOCOLS,
        help="direct: one turn, the question + the benchmark's answer-format suffix; ground_r1: the "
        "multi-round rollout (SPEC §2); ground_sft: the two fixed turns of SPEC §8; likelihood: V*'s "
        "official scoring (no generation: the option with the lowest mean token loss; vstar, vstar_hf); "
        "ground_r1_likelihood: the crop loop, then the same scoring given its final context",
    )
    p.add_argument("--model_path", default=None, help="checkpoint folder (default: the tiny random model, a demo)")
    p.add_argument(
        "--dataset_root",
        default=None,
        help="folder holding the release files (MME.jsonl, ...) and, without --image_root, the images "
        "(DATASET_ROOT/{name}/ when it exists, else beside the file); default: a built-in demo set",
    )
    p.add_argument(
        "--image_root",
        default=None,
        help="the release's layout: the LVLM_benchmarks folder, images of each benchmark in "
        "IMAGE_ROOT/{name}/ (DATASET_ROOT then holds only the JSONL files)",
    )
    p.add_argument("--output_dir", required=True, help="one subfolder per benchmark; reuse it to resume")
    p.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset of " + ",".join(STAGES))
    p.add_argument("--batch_size", type=int, default=8, help="items per generate call (per process)")
    p.add_argument(
        "--max_items",
        "--max_items_per_dataset",
        dest="max_items",
        type=int,
        default=0,
        help="at most N items per benchmark (MMBench: the first N questions with all their rotated "
        "copies, for CircularEval); 0 = all. --max_items_per_dataset is accepted too",
    )
    add_decoding_arguments(p, demo_tokens="the demo model or the built-in demo set")
    p.add_argument(
        "--grade",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="grade MM-Vet when a grader endpoint is configured",
    )
    p.add_argument(
        "--judge_model",
        default=None,
        help="MM-Vet grader model (default: $OPENAI_MODEL, else gpt-4o-mini); the summary names it. The "
        "official evaluator used gpt-4-0613, lmms-eval 0.7.3 gpt-4o-2024-11-20 (docs/metrics.md)",
    )
    p.add_argument("--judge_base_url", default=None, help="grader endpoint (default: $OPENAI_BASE_URL)")
    p.add_argument("--judge_concurrency", type=int, default=None, help="grader requests in flight")
    p.add_argument(
        "--judge_max_tokens",
        type=int,
        default=MMVET_GRADER_MAX_TOKENS,
        help="grader reply budget (the official evaluator's 3)",
    )
    p.add_argument("--judge_cache", default=None, help="grader cache JSONL (default: OUTPUT_DIR/judge_cache.jsonl)")
    p.add_argument("--label", default=None, help="the run's name in the summary (default: protocol and model)")
    p.add_argument(
        "--scripted_policy",
        default=None,
        help="tests and demos only: every turn comes from this scripted policy of ground_r1.demo.scripted "
        "(e.g. ground_until_limit, which writes boxes) instead of the model's generate; part of the "
        "predictions' identity, so a real run never resumes from it",
    )
    add_max_image_pixels_argument(p)
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    return p


def _parse_list(text: str, valid: tuple[str, ...] | None, what: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    for name in names if valid else ():
        if name not in valid:
            close = difflib.get_close_matches(name, valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SystemExit(f"error: unknown {what} {name!r}{hint}; valid: {', '.join(valid)}")
    return names


def benchmark_names(text: str, demo_data: bool = False) -> list[str]:
    """``all`` (or empty) -> SPEC §7's general set (with ``demo_data``, the built-in demo set: every one with
    ``demo_records``); ``zoom`` -> the zoom-in benchmarks (V*, HR-Bench, TreeBench); else the listed names (checked
    at load)."""
    names = _parse_list(text, None, "benchmark")
    if [n.lower() for n in names] == ["zoom"]:
        return list_benchmarks("zoom")
    if names and [n.lower() for n in names] != ["all"]:
        return names
    return [n for n in list_benchmarks() if not demo_data or get_benchmark(n).demo_records]


def apply_demo_defaults(args: argparse.Namespace, ctx: DistContext) -> None:
    """Tiny model and/or the built-in demo set when none is given; small budgets for either."""
    demo_model, demo_data = args.model_path is None, args.dataset_root is None
    if demo_model:
        from ground_r1.demo.tiny import ensure_tiny_model

        args.model_path = str(ensure_tiny_model())
        logger.warning("no --model_path: evaluating the tiny random model %s (a demo, not a result)", args.model_path)
    if demo_data:
        folder = Path(args.output_dir) / "builtin_general"
        if ctx.is_main:
            write_demo_dataset(folder)
        barrier(ctx)
        args.dataset_root = str(folder)
        logger.warning("no --dataset_root: the built-in demo set %s (a demo, not a result)", folder)
    apply_rollout_settings(args, demo_pixels=demo_model, demo_tokens=demo_model or demo_data)


def inference_config(args: argparse.Namespace, spec: Any = None) -> identity.InferenceConfig:
    """The settings one benchmark's predictions depend on (:func:`ground_r1.evaluation.identity.inference_config`);
    ``spec``: the benchmark's spec, whose name, version and option seed are part of the identity. A likelihood
    protocol's predictions carry their own protocol; the engine running a protocol is built with
    ``general.inference_protocol`` (:func:`engine_config`)."""
    protocol = (
        args.protocol if args.protocol in general.LIKELIHOOD_PROTOCOLS else general.inference_protocol(args.protocol)
    )
    return identity.inference_config(
        args,
        protocol=protocol,
        benchmark=spec.name if spec is not None else "",
        benchmark_version=spec.version if spec is not None else "",
        option_seed=spec.option_seed if spec is not None else None,
    )


def engine_config(args: argparse.Namespace) -> identity.InferenceConfig:
    """The settings of the engine that runs ``--protocol`` (the one-turn ``baseline`` for ``direct``, the
    ``ground_r1`` rollout for ``ground_r1_likelihood``)."""
    return dataclasses.replace(inference_config(args), protocol=general.inference_protocol(args.protocol))


def stage_infer(args: argparse.Namespace, ctx: DistContext, loaded: list[general.BenchmarkData]) -> None:
    """Predict every benchmark into its folder; the model is loaded once, and only if something is left."""
    from ground_r1.models.loading import load_model, load_processor

    config = engine_config(args)
    engine: list[inference.Engine] = []

    def make_engine() -> inference.Engine:
        if not engine:
            processor = load_processor(args.model_path, min_pixels=args.min_pixels, max_pixels=args.max_pixels)
            model = load_model(args.model_path, dtype=args.dtype, attn_implementation=args.attn_implementation)
            engine.append(inference.Engine(model.to(ctx.device()).eval(), processor, config))
            if args.scripted_policy:  # tests: box-quality rows need boxes a random model never writes
                from ground_r1.demo.scripted import ScriptedGenerator, resolve_policy

                engine[0].generator = ScriptedGenerator(engine[0].codec, resolve_policy(args.scripted_policy))
        return engine[0]

    for data in loaded:
        out = Path(args.output_dir) / data.name
        if args.protocol in general.LIKELIHOOD_PROTOCOLS:  # V*'s official scoring: no answer is generated
            from ground_r1.evaluation.likelihood import run_likelihood

            data.spec.prepare_images(data.items)
            rollout = make_engine() if args.protocol == "ground_r1_likelihood" else None
            processor = load_processor(args.model_path, min_pixels=args.min_pixels, max_pixels=args.max_pixels)
            model = getattr(rollout.generator, "model", None) if rollout is not None else None  # scripted: none
            if model is None:
                model = load_model(args.model_path, dtype=args.dtype, attn_implementation=args.attn_implementation).to(
                    ctx.device()
                )
            written = run_likelihood(
                data.spec,
                data.items,
                model.eval(),
                processor,
                out,
                inference_config(args, data.spec),
                rank=ctx.rank,
                world_size=ctx.world_size,
                rollout=rollout,
            )
            logger.info("%s rank %d: %d item(s) scored by option likelihood", data.name, ctx.rank, written)
            barrier(ctx)
            if ctx.is_main:
                inference.finish(out, data.items)
            continue
        items = general.to_eval_items(data, args.protocol)
        summary = inference.run_inference(
            items,
            make_engine,
            out,
            inference_config(args, data.spec),
            rank=ctx.rank,
            world_size=ctx.world_size,
            progress=not args.no_progress,
        )
        logger.info("%s rank %d: %s", data.name, ctx.rank, summary)
        barrier(ctx)
        if ctx.is_main:
            inference.finish(out, items)


def _predictions(out: Path) -> dict[str, dict[str, Any]]:
    return {str(p["key"]): p for p in load_predictions(out)}


def stage_grade(args: argparse.Namespace, loaded: list[general.BenchmarkData]) -> int:
    """Each judged benchmark's grader (``spec.judge_plan``: MM-Vet's, SPEC §7; HR-Bench's official yes/no judge)
    when an endpoint is configured; returns how many items were left ungraded (failed or unparseable: a rerun
    grades only those)."""
    ungraded = 0
    for data in (d for d in loaded if d.spec.needs_judge):
        if not args.grade:
            logger.warning("%s WAS NOT GRADED: grading skipped (--no-grade)", data.name)
            continue
        overrides = {
            k: v
            for k, v in (
                ("model", args.judge_model),
                ("base_url", args.judge_base_url),
                ("concurrency", args.judge_concurrency),
            )
            if v is not None
        }
        config = JudgeConfig.from_env(max_tokens=args.judge_max_tokens, **overrides)
        if not config.is_configured():
            logger.warning(
                "%s WAS NOT GRADED: no grader endpoint configured (set OPENAI_BASE_URL and/or "
                "OPENAI_API_KEY, and OPENAI_MODEL); its row shows n/a",
                data.name,
            )
            continue
        out = Path(args.output_dir) / data.name
        cache = args.judge_cache or Path(args.output_dir) / "judge_cache.jsonl"
        report = general.grade(data, _predictions(out), out / general.GRADES_NAME, config, cache_path=cache)
        logger.info("%s: %s", data.name, report.summary())
        ungraded += report.failed + report.unparseable
    return ungraded


def run_label(args: argparse.Namespace) -> str:
    return args.label or f"{args.protocol}, {Path(args.model_path).name if args.model_path else 'model'}"


def stage_score(args: argparse.Namespace, read: general.GeneralRead) -> tuple[str, int]:
    """Per-item records and metrics per benchmark, then the summary across benchmarks (Markdown + CSV), a row
    for each benchmark that could not run, and one line per file read. Returns the Markdown and the number of
    items left out (prediction errors, missing predictions)."""
    rows: list[general.SummaryRow] = []
    left_out = 0
    failed = dict(read.failed)
    for data in read.loaded:
        out = Path(args.output_dir) / data.name
        try:
            grades_path = out / general.GRADES_NAME
            grades = load_judgments(grades_path) if data.spec.needs_judge and grades_path.is_file() else None
            scored = general.score_benchmark(data, _predictions(out), grades)
            metrics = data.spec.aggregate(scored.records)
        except (ValueError, OSError) as exc:  # one benchmark's unreadable outputs never stop the others
            logger.error("%s: cannot score: %s", data.name, exc)
            failed[data.name] = f"cannot score: {exc}"
            continue
        (out / "scores.jsonl").write_text("".join(json.dumps(r) + "\n" for r in scored.records), encoding="utf-8")
        extra = {
            "benchmark": data.name,
            "version": data.spec.version,
            "protocol": args.protocol,
            "file": str(data.file),
            "records_read": data.records_read,
            "skipped": data.skipped_records,
            "errors": scored.errors,
            "missing": scored.missing,
        }
        summary = general.summary_rows(data.spec, metrics, scored, skipped=data.skipped_records)
        # One entry per table row (a list: the headline and its variant rows may share a metric name).
        uncertainty = [
            {
                "metric": r.metric,
                "rule": r.rule,
                "variant": r.variant,
                "value": r.score,
                "se": r.se,
                "items": r.items,
                "method": r.error_bar,
            }
            for r in summary
        ]
        (out / "metrics.json").write_text(
            json.dumps({**extra, "metrics": metrics, "uncertainty": uncertainty}, indent=2) + "\n", encoding="utf-8"
        )
        rows.extend(summary)
        left_out += scored.errors + scored.missing
    rows.extend(general.failed_row(name, why) for name, why in failed.items())
    files = [general.file_line(d) for d in read.loaded] + [
        f"{name}: COULD NOT RUN: {why.splitlines()[0]}" for name, why in failed.items()
    ]
    out_dir = Path(args.output_dir)
    header = [line for line in (run_header(out_dir / d.name) for d in read.loaded[:1]) if line]
    markdown = general.render_summary_markdown(rows, run_label(args), files, header=header)
    (out_dir / SUMMARY_MD).write_text(markdown, encoding="utf-8")
    (out_dir / SUMMARY_CSV).write_text(general.render_summary_csv(rows), encoding="utf-8")
    read.failed.update(failed)
    return markdown, left_out


def check_configuration(args: argparse.Namespace, names: list[str]) -> None:
    """What must hold before any work (exit 1 otherwise): known benchmark names, existing folders.

    Raises:
        ValueError: an unknown benchmark name (with the closest match) or a folder that does not exist.
    """
    for name in names:
        spec = get_benchmark(name)
        if args.protocol in general.LIKELIHOOD_PROTOCOLS and not spec.likelihood_rule:
            scored = ", ".join(n for n in list_benchmarks(None) if get_benchmark(n).likelihood_rule)
            raise ValueError(
                f"--protocol {args.protocol} scores options by their likelihood ({scored}); "
                f"{spec.name} has no likelihood scoring: use direct or ground_r1"
            )
    folders = (("--dataset_root (DATASET_ROOT)", args.dataset_root), ("--image_root (IMAGE_ROOT)", args.image_root))
    for flag, folder in folders:
        if folder is not None and not Path(folder).is_dir():
            raise ValueError(f"{flag} is not a folder: {folder}")


def write_skipped(args: argparse.Namespace, read: general.GeneralRead) -> int:
    """``OUTPUT_DIR/skipped_records.jsonl``: every skipped record of every benchmark (``file:line: field: why``
    and its benchmark); the number of skipped records."""
    from ground_r1.data.records import SKIPPED_RECORDS_NAME, write_issues

    path = Path(args.output_dir) / SKIPPED_RECORDS_NAME
    path.unlink(missing_ok=True)  # a stale list from an earlier run
    for data in read.loaded:
        if data.skipped:
            write_issues(data.skipped, path, extra={"benchmark": data.name}, append=True)
    for data in read.loaded:
        logger.log(logging.WARNING if data.skipped else logging.INFO, "%s", general.file_line(data))
    total = sum(d.skipped_records for d in read.loaded)
    if total:
        logger.warning("%d record(s) skipped in all; each is listed in %s", total, path)
    return total


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stages = _parse_list(args.stages, STAGES, "stage")
    names = benchmark_names(args.benchmarks, demo_data=args.dataset_root is None)
    ctx = init_distributed()
    logging.basicConfig(
        level=logging.INFO if ctx.is_main else logging.WARNING,
        format=f"%(asctime)s %(levelname)s [rank {ctx.rank}] %(name)s: %(message)s",
    )
    ungraded = incomplete = 0
    try:
        check_model_path(args.model_path)  # a missing local folder is named before anything loads (issue 17)
        set_max_image_pixels(args.max_image_pixels)
        check_configuration(args, names)
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
        apply_demo_defaults(args, ctx)
        read = general.read_benchmarks(
            names, args.dataset_root, image_root=args.image_root, max_items=args.max_items or None
        )
        if not read.loaded:
            raise ValueError(
                "no benchmark could run (each one's reason is above): check DATASET_ROOT"
                + (" and IMAGE_ROOT" if args.image_root else "")
            )
        skipped = write_skipped(args, read) if ctx.is_main else 0
        logger.info("benchmarks: %s", ", ".join(f"{d.name} ({len(d.items)} items, {d.file})" for d in read.loaded))
        if "infer" in stages:
            stage_infer(args, ctx, read.loaded)
        if not ctx.is_main:
            return 0
        if "grade" in stages:
            ungraded = stage_grade(args, read.loaded)
        left_out = 0
        if "score" in stages:
            markdown, left_out = stage_score(args, read)
            print(markdown, flush=True)
        incomplete = skipped + left_out + len(read.failed)
    except JudgeAuthenticationError as exc:
        logger.error("%s (exit %d)", exc, outcome.EXIT_CONFIG_ERROR)
        return outcome.EXIT_CONFIG_ERROR
    except (FileNotFoundError, ValueError) as exc:
        logger.error("%s", exc)
        return outcome.EXIT_CONFIG_ERROR
    finally:
        shutdown(ctx)
    code = outcome.exit_code(unjudged=ungraded, incomplete=incomplete)
    if ungraded:
        logger.error(
            "%d judged item(s) (MM-Vet, HR-Bench's judge) could not be graded (endpoint down or "
            "unparseable replies): the summary says so; rerun the same command to grade only those items "
            "(exit %d)",
            ungraded,
            code,
        )
    if read.failed:
        logger.error("could not run: %s; the other benchmarks finished", ", ".join(read.failed))
    if incomplete:
        logger.warning(
            "%d record(s) skipped or left out, or benchmark(s) that could not run: the summary counts them%s",
            incomplete,
            f" (exit {code})" if code == outcome.EXIT_INCOMPLETE else "",
        )
    return code


if __name__ == "__main__":
    sys.exit(main())
