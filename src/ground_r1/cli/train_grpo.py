"""Ground-R1 GRPO training (the recipe `scripts/run_grpo_video.sh` launches).

    python -m ground_r1.cli.train_grpo --config configs/grpo/release.yaml \\
        --model_name_or_path Qwen/Qwen2.5-VL-7B-Instruct --data_path viscot_train.jsonl --image_root /data/viscot
    python -m ground_r1.cli.train_grpo --config configs/grpo/tiny_cpu.yaml     # the CPU demo defaults

Any field of GroundR1Config (TRL's GRPOConfig + the method), GroundR1ScriptArguments or TRL's ModelConfig can be
given in the YAML and overridden on the command line (TRL's parser conventions). With no model or data given,
the tiny offline model and the built-in synthetic data are used, and the log says so.

The recipe, top to bottom: parse and check -> data (validated up front, before any GPU time) -> model and
processor -> reward functions -> trainer -> resume point -> train -> save.
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


def parse_args(argv: list[str] | None = None):
    from trl import ModelConfig, TrlParser

    from ground_r1.config import GroundR1Config, GroundR1ScriptArguments

    parser = TrlParser((GroundR1ScriptArguments, GroundR1Config, ModelConfig))
    return parser.parse_args_and_config(list(argv) if argv is not None else None)


def setup_logging(is_main: bool) -> None:
    level = logging.INFO if is_main else logging.WARNING
    logging.basicConfig(level=level, format="[%(asctime)s] %(message)s", datefmt="%H:%M:%S", force=True)
    for noisy in ("httpx", "urllib3", "datasets", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def default_model_path() -> str:
    """The tiny instruct checkpoint shipped with the project when present, else the random tiny model."""
    from ground_r1 import paths
    from ground_r1.models.tiny import ensure_tiny_model

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
    from ground_r1.data.synthetic import ensure_default_dataset

    train_path, eval_path, image_root = script_args.data_path, script_args.eval_data_path, script_args.image_root
    if train_path is None:
        folder = ensure_default_dataset(num_train=script_args.synthetic_num_train, num_eval=script_args.synthetic_num_eval)
        train_path, image_root = str(folder / "train.jsonl"), str(folder)
        eval_path = eval_path or str(folder / "eval.jsonl")
        logger.info("no DATA_PATH: using the built-in synthetic zoom-in data (%s)", folder)
    trainable = [d for d in registry.known_datasets() if registry.has_rule(d)]
    known = None if registry.default_handler is not None else trainable
    common = dict(image_root=image_root, path_prefix=script_args.image_path_prefix,
                  min_pixels=training_args.min_pixels, max_pixels=training_args.max_pixels,
                  known_datasets=known, skip_bad_records=script_args.skip_bad_records,
                  special_tokens=special_tokens)
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
        logger.warning("%d training record(s) kept with unusable evidence boxes (their GIoU metric uses the boxes "
                       "left, n/a when none): listed in %s", train.records_with_box_issues, out)
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
    per_step = (training_args.per_device_train_batch_size // training_args.num_generations) * world * training_args.gradient_accumulation_steps
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

    return load_processor(model_args.model_name_or_path, min_pixels=training_args.min_pixels,
                          max_pixels=training_args.max_pixels, trust_remote_code=training_args.trust_remote_code)


def build_model(model_args, training_args):
    from ground_r1.models.loading import freeze_vision_tower, load_model

    path = model_args.model_name_or_path
    model = load_model(path, dtype=model_args.dtype or "auto", attn_implementation=model_args.attn_implementation or "auto",
                       trust_remote_code=training_args.trust_remote_code)
    if training_args.freeze_vision_tower:
        freeze_vision_tower(model, freeze_projector=training_args.freeze_projector)
    return model


def build_reward_functions(training_args):
    from ground_r1.rewards.registry import build_registry
    from ground_r1.rewards.trl_functions import load_reward_function, make_accuracy_reward

    registry = build_registry(default_handler=training_args.accuracy_default_handler,
                              letter_rule=training_args.letter_rule)
    funcs = []
    for spec in training_args.reward_functions:
        funcs.append(make_accuracy_reward(registry) if spec == "accuracy" else load_reward_function(spec))
    return funcs, registry


def heldout_controls(trainer, eval_ds, training_args, registry) -> None:
    """Greedy held-out evaluation of the trained policy with its controls -> OUTPUT_DIR/heldout_eval.json."""
    import json

    import torch

    from ground_r1.data.images import load_image
    from ground_r1.evaluation.controls import evaluate_controls, json_safe
    from ground_r1.trainer.grpo_trainer import eval_sampling_from

    records = [eval_ds[i] for i in range(min(training_args.heldout_eval_questions, len(eval_ds)))]
    model = trainer.accelerator.unwrap_model(trainer.model)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        results = evaluate_controls(model, trainer.processing_class, records, [load_image(r["image"]) for r in records],
                                    registry, trainer.rollout_config,
                                    sampling=eval_sampling_from(training_args), seed=training_args.seed)
    model.train(was_training)
    path = Path(training_args.output_dir) / "heldout_eval.json"
    path.write_text(json.dumps(json_safe({"questions": len(records), "results": results}), indent=2) + "\n")
    g, lo, hi = results["grounded"], results["no_crop"], results["gt_crop"]
    logger.info("held-out (greedy, %d questions): accuracy %.3f (no-crop %.3f, ground-truth crop %.3f), GIoU %.3f "
                "(random box %.3f) -> %s", len(records), g["accuracy"], lo["accuracy"], hi["accuracy"],
                g["giou_score"], results["random_box"]["giou_score"], path)


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    argv = list(sys.argv[1:] if argv is None else argv)
    from ground_r1.distributed import init_cpu_gloo_state

    # Multi-process on CPU (tests, laptops) needs the gloo state before the training args (ENVIRONMENT.md).
    # The training args must reuse that state, and GRPOConfig.__post_init__ already reads the world size, so the
    # flag goes in before parsing.
    setup_logging(int(os.environ.get("RANK", "0")) == 0)
    from ground_r1.presets import PresetMachineError, check_preset_for_machine

    try:  # before the training arguments, which die on a GPU-only setting without saying which preset set it
        launcher = os.environ.get("GROUND_R1_LAUNCHER", "python -m ground_r1.cli.train_grpo ...")
        check_preset_for_machine(argv, launcher=launcher,
                                 cpu_preset="configs/grpo/tiny_cpu.yaml")
    except PresetMachineError as exc:
        logger.error("%s", exc)
        return 1
    if init_cpu_gloo_state() and "--accelerator_config" not in argv:
        argv = [*argv, "--accelerator_config", '{"use_configured_state": true}']
    script_args, training_args, model_args = parse_args(argv)
    from ground_r1.data.images import set_max_image_pixels

    set_max_image_pixels(script_args.max_image_pixels)

    # Defaults of the embedded demo: say so in the first line.
    if model_args.model_name_or_path is None:
        model_args.model_name_or_path = default_model_path()
        logger.info("no MODEL_PATH: training the tiny offline Qwen2.5-VL (%s) on CPU-sized settings", model_args.model_name_or_path)
    budget_callbacks = apply_question_budget(script_args, training_args)

    from ground_r1.checkpoints import resolve_resume
    from ground_r1.run_manifest import write_manifest
    from ground_r1.trainer.callbacks import MetricsJsonlCallback
    from ground_r1.trainer.grpo_trainer import GroundR1Trainer
    from trl import get_peft_config

    from ground_r1.data.records import RecordValidationError

    reward_funcs, registry = build_reward_functions(training_args)
    processor = build_processor(model_args, training_args)
    try:
        train_ds, eval_ds = load_datasets(script_args, training_args, registry,
                                          special_tokens=processor.tokenizer.all_special_tokens)
    except (FileNotFoundError, RecordValidationError) as exc:  # named for what they are, before any GPU time
        logger.error("%s", exc)
        return 1
    model = build_model(model_args, training_args)
    resume = resolve_resume(training_args.resume_from_checkpoint, training_args.output_dir)
    if int(os.environ.get("RANK", "0")) == 0:
        write_manifest(training_args.output_dir, argv, script_args=script_args, training_args=training_args, model_args=model_args)

    trainer = GroundR1Trainer(
        model=model,
        reward_funcs=reward_funcs,
        args=training_args,
        train_dataset=train_ds,
        eval_dataset=eval_ds if training_args.eval_strategy != "no" else None,
        processing_class=processor,
        peft_config=get_peft_config(model_args),
        callbacks=[MetricsJsonlCallback(training_args.output_dir), *budget_callbacks],
    )
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(training_args.output_dir)
    logger.info("model saved to %s", training_args.output_dir)
    if training_args.write_report and trainer.accelerator.is_main_process:
        from ground_r1.reporting import write_report

        for name, path in write_report(training_args.output_dir).items():
            logger.info("%s written to %s", name, path)
    if training_args.heldout_eval_questions and eval_ds is not None:
        if trainer.accelerator.num_processes == 1:
            heldout_controls(trainer, eval_ds, training_args, registry)
        elif trainer.accelerator.is_main_process:  # a rank-0-only forward would hang a sharded (ZeRO-3) model
            logger.info("held-out controls run in one process: python -m ground_r1.cli.evaluate_controls "
                        "--model_path %s --config <this run's preset>", training_args.output_dir)
    if training_args.write_report and trainer.accelerator.is_main_process:
        from ground_r1.reporting import write_alarm_section

        write_alarm_section(training_args.output_dir)  # the report's refinement line, with the held-out figures
    logger.info("total time %.1f s", time.perf_counter() - started)
    finish_distributed()
    if trainer.stopped_by_alarm:  # alarm_action: stop (trainer/alarms.py): the checkpoint of that step is saved
        from ground_r1.trainer.alarms import STOPPED_EXIT_CODE

        logger.warning("stopped by a collapse alarm at step %d (alarms.jsonl): exit code %d", trainer.state.global_step,
                       STOPPED_EXIT_CODE)
        return STOPPED_EXIT_CODE
    return 0


if __name__ == "__main__":
    exit_process(main())
