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


def main(argv: list[str] | None = None) -> int:
    from trl import TrlParser

    from ground_r1.distributed import init_cpu_gloo_state
    from ground_r1.sft.train import GroundR1SFTConfig, SFTScriptArguments, train_sft

    # Several processes on CPU need the gloo state before the training arguments (ENVIRONMENT.md).
    gloo = init_cpu_gloo_state()
    parser = TrlParser((SFTScriptArguments, GroundR1SFTConfig))
    script_args, config = parser.parse_args_and_config(argv)
    if gloo:
        config.accelerator_config.use_configured_state = True
    logging.basicConfig(level=logging.INFO if config.process_index == 0 else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    train_sft(script_args, config)
    finish_distributed()
    return 0


if __name__ == "__main__":
    exit_process(main())
