"""Ground-R1 GRPO training (the recipe `scripts/run_grpo_video.sh` launches).

    python -m ground_r1.cli.train_grpo --config configs/grpo/release.yaml \\
        --model_name_or_path Qwen/Qwen2.5-VL-7B-Instruct --data_path viscot_train.jsonl --image_root /data/viscot
    python -m ground_r1.cli.train_grpo --config configs/grpo/tiny_cpu.yaml     # the CPU demo defaults

Any field of GroundR1Config (TRL's GRPOConfig + the method), GroundR1ScriptArguments or TRL's ModelConfig can be
given in the YAML and overridden on the command line, by its whole name (``ground_r1.cli.parser``: no prefixes;
``--help`` shows the method's options, ``--help_all`` every one). With no model or data given, the tiny offline
model and the built-in synthetic data are used, and the log says so.

The recipe, top to bottom: check before the arguments are built (a missing local model folder, then a preset that
needs a GPU on a machine without one: exit 1) -> parse and check (a tracker that cannot start stops the run here,
exit 1; an unknown flag or YAML key exits 2) -> data (validated up front, before any GPU time) -> model and processor -> reward functions ->
trainer (one console line per step; the held-out figure before step 1 and every ``heldout_eval_steps``) -> resume
point -> train -> save (with rollout_settings.json) -> held-out controls -> curves, gallery, model card.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from pathlib import Path

from ground_r1.distributed import exit_process, finish_distributed

logger = logging.getLogger("ground_r1.train")


DESCRIPTION = (
    "Ground-R1 GRPO training: the model proposes an evidence box, the box is cropped from the full-resolution "
    "image and fed back, the model may zoom again, then answers; GRPO (TRL's GRPOTrainer) trains it from format and "
    "answer-accuracy rewards only, with a tree rollout (G1 grounding samples per question, each shared by G2 "
    "answering trajectories). Settings come from a YAML preset (--config configs/grpo/{tiny_cpu,release,paper}.yaml) "
    "and flags, which override it. With no model and no data it trains the shipped tiny Qwen2.5-VL on built-in "
    "synthetic data on CPU. Writes OUTPUT_DIR: checkpoints, metrics.jsonl, curves.png, trajectories.html, "
    "heldout_eval.json, README.md (model card), run_manifest.json."
)

# The usual TRL/transformers options, shown by --help after the method's own (the rest: --help_all).
COMMON_TRAINING_OPTIONS = (
    "output_dir",
    "max_steps",
    "num_train_epochs",
    "learning_rate",
    "lr_scheduler_type",
    "num_generations",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "max_completion_length",
    "beta",
    "loss_type",
    "temperature",
    "top_k",
    "top_p",
    "repetition_penalty",
    "bf16",
    "gradient_checkpointing",
    "deepspeed",
    "logging_steps",
    "save_steps",
    "save_total_limit",
    "report_to",
    "run_name",
    "seed",
    "resume_from_checkpoint",
)


def build_parser():
    from trl import GRPOConfig, ModelConfig

    from ground_r1.cli.parser import HelpSection, StrictTrlParser, field_names, own_fields
    from ground_r1.config import GroundR1Config, GroundR1ScriptArguments

    sections = [
        HelpSection(
            "Ground-R1 method (GroundR1Config; SPEC §2-§5, docs/method.md)", own_fields(GroundR1Config, GRPOConfig)
        ),
        HelpSection("data (DATA_PATH, IMAGE_ROOT, ... of the launcher)", field_names(GroundR1ScriptArguments)),
        HelpSection(
            "model (MODEL_PATH; TRL ModelConfig)",
            ("model_name_or_path", "dtype", "attn_implementation", "use_peft", "lora_r", "lora_alpha"),
        ),
        HelpSection(
            "common training options (TRL GRPOConfig, transformers TrainingArguments)", COMMON_TRAINING_OPTIONS
        ),
    ]
    return StrictTrlParser(
        (GroundR1ScriptArguments, GroundR1Config, ModelConfig),
        description=DESCRIPTION,
        sections=sections,
        prog="python -m ground_r1.cli.train_grpo",
    )


def parse_args(argv: list[str] | None = None):
    return build_parser().parse_args_and_config(list(argv) if argv is not None else None)


def setup_logging(is_main: bool) -> None:
    level = logging.INFO if is_main else logging.WARNING
    logging.basicConfig(level=level, format="[%(asctime)s] %(message)s", datefmt="%H:%M:%S", force=True)
    for noisy in ("httpx", "urllib3", "datasets", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # weight loading/saving bars: the console keeps one line per step


def default_model_path() -> str:
    """The tiny instruct checkpoint shipped with the project when present, else the random tiny model."""
    from ground_r1 import paths
    from ground_r1.demo.tiny import ensure_tiny_model

    shipped = paths.PACKAGE_DIR / "assets" / "tiny-instruct"
    if (shipped / "config.json").is_file():
        return str(shipped)
    return str(ensure_tiny_model())


def load_datasets(script_args, training_args, registry, special_tokens=()):
    """Validated train/eval records as `datasets.Dataset`s. Every bad record is reported at once, before any GPU
    time; with --skip_bad_records the rest is used and the skipped ones are written to OUTPUT_DIR."""
    from ground_r1.data.records import (
        BOX_ISSUES_NAME,
        SKIPPED_RECORDS_NAME,
        load_viscot_records,
        records_to_dataset,
        write_issues,
    )
    from ground_r1.demo.synthetic import ensure_default_dataset

    train_path, eval_path, image_root = script_args.data_path, script_args.eval_data_path, script_args.image_root
    if train_path is None:
        folder = ensure_default_dataset(
            num_train=script_args.synthetic_num_train, num_eval=script_args.synthetic_num_eval
        )
        train_path, image_root = str(folder / "train.jsonl"), str(folder)
        eval_path = eval_path or str(folder / "eval.jsonl")
        logger.info("no DATA_PATH: using the built-in synthetic zoom-in data (%s)", folder)
    trainable = [d for d in registry.known_datasets() if registry.has_rule(d)]
    known = None if registry.default_handler is not None else trainable
    common = dict(
        image_root=image_root,
        path_prefix=script_args.image_path_prefix,
        min_pixels=training_args.min_pixels,
        max_pixels=training_args.max_pixels,
        known_datasets=known,
        skip_bad_records=script_args.skip_bad_records,
        special_tokens=special_tokens,
    )
    out_dir = Path(training_args.output_dir)
    train = load_viscot_records(train_path, **common)
    if train.issues:
        out = write_issues(train.issues, out_dir / SKIPPED_RECORDS_NAME)
        logger.warning("skipped %d bad training record(s); list written to %s", train.skipped, out)
    if not train.records:
        raise ValueError(f"{train_path}: no valid training records")
    eval_ds = None
    held_out_notes = []
    if eval_path:
        held_out = load_viscot_records(eval_path, limit=script_args.max_eval_questions, **common)
        eval_ds = records_to_dataset(held_out.records) if held_out.records else None
        held_out_notes = held_out.box_notes
    # The evidence box is only a metric (SPEC §3): records with an unusable one train as any other, listed here;
    # the per-step metric giou/no_gt counts the trajectories left without a box to score against.
    if train.box_notes or held_out_notes:
        out = write_issues(train.box_notes + held_out_notes, out_dir / BOX_ISSUES_NAME)
        logger.warning(
            "%d training record(s) kept with unusable evidence boxes (their GIoU metric uses the boxes "
            "left, n/a when none): listed in %s",
            train.records_with_box_issues,
            out,
        )
    return records_to_dataset(train.records), eval_ds


class StopAtStepCallback:
    """Stops training after a step count without touching max_steps (so the LR schedule keeps its span)."""

    def __new__(cls, stop_step: int):
        from transformers import TrainerCallback

        class _Stop(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step >= stop_step:
                    control.should_training_stop = True
                    control.should_save = True

        return _Stop()


def apply_question_budget(script_args, training_args) -> list:
    """SPEC §5: budgets are in questions. Steps = ceil(questions / questions per optimizer step). With
    lr_schedule_span "budget" this is max_steps; with "epoch" (the release) the schedule spans
    num_train_epochs and a callback stops training at the budget. Returns the callbacks to add."""
    if not script_args.max_train_questions:
        return []
    world = int(os.environ.get("WORLD_SIZE", "1"))
    per_step = (
        (training_args.per_device_train_batch_size // training_args.num_generations)
        * world
        * training_args.gradient_accumulation_steps
    )
    steps = math.ceil(script_args.max_train_questions / per_step)
    logger.info("budget %d questions = %d steps of %d questions", script_args.max_train_questions, steps, per_step)
    if script_args.lr_schedule_span == "budget":
        training_args.max_steps = steps
        return []
    if script_args.lr_schedule_span != "epoch":
        raise ValueError(f"lr_schedule_span must be 'budget' or 'epoch', got {script_args.lr_schedule_span!r}")
    return [StopAtStepCallback(steps)]


def build_processor(model_args, training_args):
    """The processor first (cheap): its special tokens validate the data before the model is loaded."""
    from ground_r1.models.loading import load_processor

    return load_processor(
        model_args.model_name_or_path,
        min_pixels=training_args.min_pixels,
        max_pixels=training_args.max_pixels,
        trust_remote_code=training_args.trust_remote_code,
    )


def build_model(model_args, training_args):
    from ground_r1.models.loading import freeze_vision_tower, load_model

    path = model_args.model_name_or_path
    model = load_model(
        path,
        dtype=model_args.dtype or "auto",
        attn_implementation=model_args.attn_implementation or "auto",
        trust_remote_code=training_args.trust_remote_code,
    )
    if training_args.freeze_vision_tower:
        freeze_vision_tower(model, freeze_projector=training_args.freeze_projector)
    return model


def build_reward_functions(training_args):
    from ground_r1.rewards.registry import build_registry
    from ground_r1.rewards.trl_functions import load_reward_function

    registry = build_registry(
        default_handler=training_args.accuracy_default_handler, letter_rule=training_args.letter_rule
    )
    return [load_reward_function(spec, registry) for spec in training_args.reward_functions], registry


def heldout_controls(trainer, evaluation, training_args, base: dict | None = None) -> None:
    """Greedy held-out evaluation of the trained policy with its controls -> OUTPUT_DIR/heldout_eval.json, with
    what each field measures and, when the run measured it before step 1, the base model's figures."""
    import json

    from ground_r1.evaluation.controls import CONDITION_MEANINGS, CONDITIONS, FIELD_MEANINGS, json_safe

    model = trainer.accelerator.unwrap_model(trainer.model)
    # Every condition, the model-free baselines (majority answer, whole-image / centred box) included: issue 21's
    # audit found the majority answer (0.28) above the base model (0.20), so no table goes without them.
    results = evaluation.run(model, trainer.processing_class, list(CONDITIONS))
    if base is None:
        base = base_from_metrics(Path(training_args.output_dir) / "metrics.jsonl")
    report = {
        "questions": len(evaluation.records),
        "decoding": "greedy, the training rollout and its settings",
        "results": results,
        **({"base": base} if base else {}),
        "conditions": CONDITION_MEANINGS,
        "fields": FIELD_MEANINGS,
    }
    path = Path(training_args.output_dir) / "heldout_eval.json"
    path.write_text(json.dumps(json_safe(report), indent=2) + "\n")
    g, lo, hi = results["grounded"], results["no_crop"], results["gt_crop"]
    se = g.get("accuracy_se")
    # gt_crop sits out questions without a usable evidence box (issue 15): with none left it holds no accuracy.
    logger.info(
        "held-out (greedy, %d questions): accuracy %.3f%s (no-crop %.3f, ground-truth crop %.3f, majority "
        "answer %.3f%s), GIoU %.3f (random box %.3f, whole-image box %.3f) -> %s",
        len(evaluation.records),
        g["accuracy"],
        f" ± {se:.3f}" if se is not None else "",
        lo["accuracy"],
        hi.get("accuracy", float("nan")),
        results.get("majority_answer", {}).get("accuracy", float("nan")),
        f"; before RL {base['accuracy']:.3f}" if base and base.get("accuracy") is not None else "",
        g["giou_score"],
        results["random_box"]["giou_score"],
        results.get("whole_image_box", {}).get("giou_score", float("nan")),
        path,
    )


def base_from_metrics(metrics_path: Path) -> dict | None:
    """The held-out figures logged before step 1 (``heldout/*`` at step 0 of metrics.jsonl), e.g. after a resume."""
    import json

    if not metrics_path.is_file():
        return None
    for line in metrics_path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line) if line.strip() else {}
        except json.JSONDecodeError:  # a line cut by a kill
            continue
        if record.get("step") == 0 and "heldout/accuracy" in record:
            return {k.split("/", 1)[1]: v for k, v in record.items() if k.startswith("heldout/")}
    return None


def multi_process_hint(training_args, script_args) -> str:
    """The command that runs the held-out controls after a multi-process run (the checkpoint carries its rollout
    settings; the held-out data is named when the run had its own)."""
    command = f"python -m ground_r1.cli.evaluate_controls --model_path {training_args.output_dir}"
    if script_args.eval_data_path:
        command += f" --data_path {script_args.eval_data_path}"
        if script_args.image_root:
            command += f" --image_root {script_args.image_root}"
    return (
        command + f" --max_questions {training_args.heldout_eval_questions} --output "
        f"{Path(training_args.output_dir) / 'heldout_eval.json'}"
    )


def flag_value(argv: list[str], flag: str) -> str | None:
    """The value given to ``flag`` on the command line (``--flag V`` or ``--flag=V``), else None."""
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    argv = list(sys.argv[1:] if argv is None else argv)
    setup_logging(int(os.environ.get("RANK", "0")) == 0)
    from ground_r1.models.loading import ModelPathError, check_model_path
    from ground_r1.presets import PresetMachineError, check_preset_for_machine

    # Before the training arguments (which die on a GPU-only setting without saying which preset set it) and before
    # anything loads: a missing local model folder first, by name (issue 17), then a preset this machine cannot
    # run (issue 15). Both are configuration errors: exit 1.
    try:
        check_model_path(flag_value(argv, "--model_name_or_path"))
        launcher = os.environ.get("GROUND_R1_LAUNCHER", "python -m ground_r1.cli.train_grpo ...")
        check_preset_for_machine(argv, launcher=launcher, cpu_preset="configs/grpo/tiny_cpu.yaml")
    except (ModelPathError, PresetMachineError) as exc:
        logger.error("%s", exc)
        return 1
    from ground_r1.distributed import init_cpu_gloo_state

    # Multi-process on CPU (tests, laptops) needs the gloo state before the training args (ENVIRONMENT.md).
    # The training args must reuse that state, and GRPOConfig.__post_init__ already reads the world size, so the
    # flag goes in before parsing.
    if init_cpu_gloo_state() and "--accelerator_config" not in argv:
        argv = [*argv, "--accelerator_config", '{"use_configured_state": true}']
    script_args, training_args, model_args = parse_args(argv)
    is_main = int(os.environ.get("RANK", "0")) == 0
    setup_logging(is_main)  # again: building the training arguments reconfigures logging
    from ground_r1.data.images import set_max_image_pixels

    set_max_image_pixels(script_args.max_image_pixels)

    from ground_r1.trackers import TrackerError, check_trackers, tracker_environment

    # Configuration errors, before anything is loaded (exit 1, the message names the problem).
    try:
        check_model_path(model_args.model_name_or_path)
        check_trackers(training_args.report_to)
    except (ModelPathError, TrackerError) as exc:
        logger.error("%s", exc)
        return 1
    tracker_environment(training_args.report_to, training_args.output_dir)

    # Defaults of the embedded demo: say so in the first line.
    if model_args.model_name_or_path is None:
        model_args.model_name_or_path = default_model_path()
        logger.info(
            "no MODEL_PATH: training the tiny offline Qwen2.5-VL (%s) on CPU-sized settings",
            model_args.model_name_or_path,
        )
    budget_callbacks = apply_question_budget(script_args, training_args)

    from ground_r1.checkpoints import resolve_resume
    from ground_r1.run_manifest import write_manifest
    from ground_r1.trainer.callbacks import MetricsJsonlCallback, quiet_console
    from ground_r1.trainer.grpo_trainer import GroundR1Trainer, eval_sampling_from, rollout_config_from
    from ground_r1.trainer.heldout import HeldoutCallback, HeldoutEvaluation
    from trl import get_peft_config

    from ground_r1.data.records import RecordValidationError

    reward_funcs, registry = build_reward_functions(training_args)
    processor = build_processor(model_args, training_args)
    try:
        train_ds, eval_ds = load_datasets(
            script_args, training_args, registry, special_tokens=processor.tokenizer.all_special_tokens
        )
    except (FileNotFoundError, RecordValidationError) as exc:  # named for what they are, before any GPU time
        logger.error("%s", exc)
        return 1
    model = build_model(model_args, training_args)
    resume = resolve_resume(training_args.resume_from_checkpoint, training_args.output_dir)
    if is_main:
        write_manifest(
            training_args.output_dir, argv, script_args=script_args, training_args=training_args, model_args=model_args
        )

    world = int(os.environ.get("WORLD_SIZE", "1"))
    evaluation = None
    if training_args.heldout_eval_questions and eval_ds is not None and world == 1:
        records = [eval_ds[i] for i in range(min(training_args.heldout_eval_questions, len(eval_ds)))]
        evaluation = HeldoutEvaluation(
            records,
            registry,
            rollout_config_from(training_args),
            eval_sampling_from(training_args),
            seed=training_args.seed,
            coordinates=training_args.coordinates,
        )
    heldout_callback = HeldoutCallback(evaluation, training_args.heldout_eval_steps) if evaluation else None

    trainer = GroundR1Trainer(
        model=model,
        reward_funcs=reward_funcs,
        args=training_args,
        train_dataset=train_ds,
        eval_dataset=eval_ds if training_args.eval_strategy != "no" else None,
        processing_class=processor,
        peft_config=get_peft_config(model_args),
        callbacks=[
            MetricsJsonlCallback(training_args.output_dir),
            *budget_callbacks,
            *([heldout_callback] if heldout_callback else []),
        ],
    )
    if heldout_callback:
        heldout_callback.attach(trainer)
    quiet_console(trainer)
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(training_args.output_dir)
    logger.info(
        "model saved to %s (with %s: evaluation reuses its image and budget settings)",
        training_args.output_dir,
        "rollout_settings.json",
    )
    if training_args.heldout_eval_questions and eval_ds is not None:
        if evaluation is not None:
            heldout_controls(trainer, evaluation, training_args, heldout_callback.base if heldout_callback else None)
        elif trainer.accelerator.is_main_process:  # a rank-0-only forward would hang a sharded (ZeRO-3) model
            logger.info(
                "held-out controls need one process (a rank-0-only forward would hang ZeRO-3); run them "
                "after this multi-process run: %s",
                multi_process_hint(training_args, script_args),
            )
    if trainer.accelerator.is_main_process:  # after the held-out evaluation: the figures show its reference lines
        from ground_r1.reporting import write_report
        from ground_r1.reporting.model_card import write_model_card

        written = (
            write_report(training_args.output_dir)
            if training_args.write_report
            else {"model card": write_model_card(training_args.output_dir)}
        )
        for name, path in written.items():
            logger.info("%s written to %s", name, path)
    logger.info("total time %.1f s", time.perf_counter() - started)
    finish_distributed()
    if trainer.stopped_by_alarm:  # alarm_action: stop (trainer/alarms.py): the checkpoint of that step is saved
        from ground_r1.trainer.alarms import STOPPED_EXIT_CODE

        logger.warning(
            "stopped by a collapse alarm at step %d (alarms.jsonl): exit code %d",
            trainer.state.global_step,
            STOPPED_EXIT_CODE,
        )
        return STOPPED_EXIT_CODE
    return 0


if __name__ == "__main__":
    exit_process(main())
