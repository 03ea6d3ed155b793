"""Train a Vanilla SFT or Ground SFT checkpoint (SPEC §8) on TRL's SFTTrainer.

    python -m ground_r1.cli.train_sft --config configs/sft/ground.yaml --sft_kind ground \\
        --model_name_or_path Qwen/Qwen2.5-VL-7B-Instruct --sft_data_dir outputs/sft_data --output_dir outputs/sft/ground
    accelerate launch --config_file configs/accelerate/single_node.yaml --num_processes 8 \\
        --deepspeed_config_file configs/deepspeed/zero3.json -m ground_r1.cli.train_sft --config ...

``--config`` is a YAML preset (configs/sft/*.yaml); every flag of ``GroundR1SFTConfig`` (TRL's SFTConfig) and
``SFTScriptArguments`` can be set there or on the command line (the command line wins). With no model and no
data it trains the tiny offline model on the built-in synthetic data. See ``ground_r1.sft.train``.
"""

from __future__ import annotations

import logging

from ground_r1.distributed import exit_process, finish_distributed
from ground_r1.sft.data import SFTDataMismatchError

logger = logging.getLogger("ground_r1.train_sft")


def main(argv: list[str] | None = None) -> int:
    import os
    import sys

    from trl import SFTConfig

    from ground_r1.cli.parser import HelpSection, StrictTrlParser, field_names, own_fields
    from ground_r1.cli.train_grpo import flag_value
    from ground_r1.data.images import set_max_image_pixels
    from ground_r1.data.records import RecordValidationError
    from ground_r1.distributed import init_cpu_gloo_state
    from ground_r1.models.loading import ModelPathError, check_model_path
    from ground_r1.presets import PresetMachineError, check_preset_for_machine
    from ground_r1.sft.train import GroundR1SFTConfig, SFTScriptArguments, train_sft

    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO if int(os.environ.get("RANK", "0")) == 0 else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # Before the training arguments (which die on a GPU-only setting without saying which preset set it): a missing
    # local model folder first, by name (issue 17), then a preset this machine cannot run (issue 15). Exit 1.
    try:
        check_model_path(flag_value(argv, "--model_name_or_path"))
        launcher = os.environ.get("GROUND_R1_LAUNCHER", "python -m ground_r1.cli.train_sft ...")
        check_preset_for_machine(argv, launcher=launcher, cpu_preset="configs/sft/tiny_cpu.yaml")
    except (ModelPathError, PresetMachineError) as exc:
        logger.error("%s", exc)
        return 1
    # Several processes on CPU need the gloo state before the training arguments (ENVIRONMENT.md).
    gloo = init_cpu_gloo_state()
    parser = StrictTrlParser(
        (SFTScriptArguments, GroundR1SFTConfig),
        description=__doc__.split("\n\n")[0],
        sections=[
            HelpSection("SFT (SPEC §8)", field_names(SFTScriptArguments) + own_fields(GroundR1SFTConfig, SFTConfig)),
            HelpSection(
                "common training options",
                (
                    "output_dir",
                    "max_steps",
                    "num_train_epochs",
                    "learning_rate",
                    "per_device_train_batch_size",
                    "gradient_accumulation_steps",
                    "bf16",
                    "logging_steps",
                    "save_steps",
                    "report_to",
                    "seed",
                ),
            ),
        ],
        prog="python -m ground_r1.cli.train_sft",
    )
    script_args, config = parser.parse_args_and_config(argv)  # a usage error exits 2 (ground_r1.cli.parser)
    if gloo:
        config.accelerator_config.use_configured_state = True
    set_max_image_pixels(script_args.max_image_pixels)
    try:
        train_sft(script_args, config)
    except (FileNotFoundError, RecordValidationError, SFTDataMismatchError) as exc:  # named, before any training
        logger.error("%s", exc)  # FileNotFoundError includes ModelPathError (a model path set in the YAML)
        return 1
    finish_distributed()
    return 0


if __name__ == "__main__":
    exit_process(main())
