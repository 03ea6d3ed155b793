"""SFT ablation training (SPEC §8): Vanilla SFT and Ground SFT on Qwen2.5-VL with TRL's ``SFTTrainer``.

The recipe, top to bottom (:func:`train_sft`):

1. data: a prepared folder (``sft_data_dir``, from ``prepare_SFT_data.sh``), or a VisCoT records file
   (``data_path``; the built-in synthetic zoom data when neither is given) prepared first into
   ``sft_data_dir`` or ``<output_dir>/sft_data`` (idempotent; main process first, the others wait). A prepared
   folder must have been made with this run's min/max pixels (``prepare_SFT_data.sh`` reads them from the same
   ``CONFIG``): Ground SFT's box targets live in that input frame, and both sets were validated and sized for it.
2. processor with explicit min/max pixels (SPEC §10), and the model in ``model_dtype`` (default fp32 master
   weights: at lr 2e-7 an AdamW update is ~1e-7, far below bf16's resolution of ~1e-4 at typical weight
   magnitudes, so bf16 weights would not move; ``bf16: true`` still computes in bf16 (autocast, or DeepSpeed,
   which keeps fp32 master weights itself)).
3. freezing: the vision tower frozen, the projector (patch merger) and the LLM trained (SPEC §8; RL freezes the
   projector too, SPEC §5).
4. TRL's ``SFTTrainer`` with our collator (:mod:`ground_r1.sft.collator`: labels on assistant tokens only,
   ``mm_token_type_ids`` for M-RoPE); the dataset is not re-processed by TRL (``skip_prepare_dataset``).
5. train (``--resume_from_checkpoint auto``: from the last complete ``checkpoint-*`` of ``output_dir``,
   :mod:`ground_r1.checkpoints`; a path: that checkpoint, which must be complete), then save an HF
   checkpoint loadable with ``Qwen2_5_VLForConditionalGeneration.from_pretrained`` plus the processor
   (``loading.save_processor``: the CPU processor cannot save itself), and ``ground_r1_sft.json`` saying how it
   was trained and which evaluation launcher fits it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trl import SFTConfig, SFTTrainer

from ground_r1.data.images import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS
from ground_r1.models.loading import check_model_path, freeze_vision_tower, load_model, load_processor, parameter_size
from ground_r1.sft.collator import SFTCollator
from ground_r1.sft.data import (
    KINDS,
    SFTDataMismatchError,
    load_sft_examples,
    prepare_sft_data,
    read_sft_metadata,
    sft_file_name,
)
from ground_r1.trainer.resume import ResumeFixesMixin

if TYPE_CHECKING:
    import datasets

logger = logging.getLogger(__name__)

INFO_NAME = "ground_r1_sft.json"
EVAL_LAUNCHERS = {
    "vanilla": "MODEL_PATH={out} bash eval/multi_baseline.sh",
    "ground": "MODEL_PATH={out} bash eval/multi_Ground_SFT.sh",
}
GENERAL_EVAL_LAUNCHER = "MODEL_PATH={out} bash eval_general_dataset/multi_SFT.sh"


@dataclass
class GroundR1SFTConfig(SFTConfig):
    r"""TRL's SFTConfig plus the SFT ablation's knobs (SPEC §8). Presets: configs/sft/{vanilla,ground,tiny_cpu}.yaml.

    Images:
        min_pixels / max_pixels (`int`, 3136 / 401408): passed explicitly to the image processor; Ground SFT data
            must have been prepared with the same values (its box targets are input-image pixels).
        add_vision_id (`bool`, True): the chat template's ``Picture k:`` prefixes, as in the rollout (SPEC §2).
    Model:
        freeze_vision_tower (`bool`, True), freeze_projector (`bool`, False): SPEC §8 "vision tower frozen,
            projector and LLM trained".
    Overridden TRL defaults:
        max_length (None): the collator never truncates (a cut through image tokens breaks the vision inputs).
        remove_unused_columns (False), dataset_kwargs ({"skip_prepare_dataset": True}): the collator reads the
            raw examples.
    """

    min_pixels: int = field(
        default=DEFAULT_MIN_PIXELS, metadata={"help": "Image processor min_pixels (SPEC §2: 3136)."}
    )
    max_pixels: int = field(
        default=DEFAULT_MAX_PIXELS, metadata={"help": "Image processor max_pixels (SPEC §2: 401408)."}
    )
    add_vision_id: bool = field(default=True, metadata={"help": "Prefix images with 'Picture k:' (SPEC §2)."})
    freeze_vision_tower: bool = field(default=True, metadata={"help": "Freeze the vision tower (SPEC §8)."})
    freeze_projector: bool = field(default=False, metadata={"help": "Freeze the projector too (SPEC §8: trained)."})
    max_length: int | None = field(default=None, metadata={"help": "Must stay None: the SFT collator never truncates."})
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Must stay False: the collator reads raw examples."}
    )

    def __post_init__(self):
        if self.dataset_kwargs is None:
            self.dataset_kwargs = {"skip_prepare_dataset": True}
        super().__post_init__()
        problems = []
        if self.min_pixels > self.max_pixels:
            problems.append(f"min_pixels ({self.min_pixels}) must not exceed max_pixels ({self.max_pixels})")
        if self.max_length is not None:
            problems.append(
                f"max_length={self.max_length}: truncation would cut through image tokens; set max_length: null "
                "(keep examples short with max_pixels instead)"
            )
        if self.packing or self.padding_free:
            problems.append(
                "packing / padding_free are not supported with images; set packing: false, padding_free: false"
            )
        if self.remove_unused_columns:
            problems.append("remove_unused_columns must be false: the collator reads the raw examples")
        if problems:
            raise ValueError("invalid GroundR1SFTConfig:\n  - " + "\n  - ".join(problems))


@dataclass
class SFTScriptArguments:
    """Model and data of an SFT run (the launchers map MODEL_PATH, DATA_PATH, IMAGE_ROOT, SFT_DATA_DIR here)."""

    sft_kind: str | None = field(default=None, metadata={"help": f"Which ablation: {' | '.join(KINDS)} (SPEC §8)."})
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Qwen2.5-VL checkpoint (default: the tiny offline model)."}
    )
    model_dtype: str = field(
        default="float32",
        metadata={"help": "Weights dtype at load: float32 (master weights; see train.py) | bfloat16 | auto."},
    )
    attn_implementation: str = field(
        default="auto",
        metadata={"help": "auto (flash_attention_2 when installed, else sdpa) | sdpa | eager | flash_attention_2."},
    )
    sft_data_dir: str | None = field(
        default=None,
        metadata={"help": "Prepared SFT folder (vanilla.jsonl, ground.jsonl, crops/); default <output_dir>/sft_data."},
    )
    data_path: str | None = field(
        default=None,
        metadata={
            "help": "VisCoT records JSONL to prepare into sft_data_dir first (default, when sft_data_dir is not given: built-in synthetic data)."
        },
    )
    image_root: str | None = field(
        default=None,
        metadata={"help": "Folder relative image paths resolve against (default: the data file's folder)."},
    )
    image_path_prefix: str | None = field(
        default=None, metadata={"help": "Prefix of the records' absolute image paths to replace by image_root."}
    )
    skip_bad_records: bool = field(
        default=False,
        metadata={"help": "Prepare the good records and list the bad ones in sft_data_dir/skipped_records.jsonl."},
    )
    max_records: int | None = field(default=None, metadata={"help": "Prepare only the first N records of data_path."})
    max_train_examples: int | None = field(
        default=None, metadata={"help": "Train on the first N examples of the prepared set."}
    )
    max_image_pixels: int = field(
        default=178_956_970,
        metadata={
            "help": "Decompression-bomb limit of dataset images in pixels (default: PIL's own error threshold; 0: no limit)."
        },
    )


def examples_to_dataset(examples: list[dict[str, Any]]) -> "datasets.Dataset":
    """The examples as a ``datasets.Dataset`` (what TRL's SFTTrainer accepts), with ``id``, ``images`` and
    ``messages`` only. Arrow gives every content item both keys (``{"type": "image", "text": None}``); the
    collator drops the ``None`` values again."""
    import datasets

    return datasets.Dataset.from_list(
        [{"id": ex["id"], "images": list(ex["images"]), "messages": ex["messages"]} for ex in examples]
    )


def _synthetic_records() -> tuple[str, str]:
    from ground_r1.demo.synthetic import ensure_default_dataset

    folder = ensure_default_dataset()
    return str(folder / "train.jsonl"), str(folder)


def resolve_sft_data(script_args: SFTScriptArguments, config: GroundR1SFTConfig) -> Path:
    """The SFT JSONL this run trains on, preparing it first when a records file is given (module docstring).

    Raises:
        FileNotFoundError: ``sft_data_dir`` holds no prepared data and no ``data_path`` was given.
        SFTDataMismatchError: data prepared for other min/max pixels than this run's.
    """
    kind = script_args.sft_kind
    sft_dir = Path(script_args.sft_data_dir or Path(config.output_dir) / "sft_data").absolute()
    data_path, image_root = script_args.data_path, script_args.image_root
    if data_path is None and script_args.sft_data_dir is None:
        data_path, image_root = _synthetic_records()
        logger.info("no data given: preparing the built-in synthetic zoom data (%s)", data_path)
    if data_path is not None:
        # One process per node prepares (crops and files on that node's disk); the others wait for it.
        with config.main_process_first(desc="prepare SFT data"):
            if config.local_process_index == 0:
                prepare_sft_data(
                    data_path,
                    sft_dir,
                    image_root=image_root if image_root is not None else str(Path(data_path).absolute().parent),
                    path_prefix=script_args.image_path_prefix,
                    min_pixels=config.min_pixels,
                    max_pixels=config.max_pixels,
                    skip_bad_records=script_args.skip_bad_records,
                    max_records=script_args.max_records,
                    progress=config.process_index == 0,
                )
    path = sft_dir / sft_file_name(kind)
    if not path.is_file():
        raise FileNotFoundError(
            f"no prepared SFT data at '{path}': run `bash qwen-vl-finetune/scripts/prepare_SFT_data.sh` with "
            f"SFT_DATA_DIR={sft_dir}, or give DATA_PATH (--data_path) to prepare it now"
        )
    metadata = read_sft_metadata(sft_dir)
    if metadata is None:
        logger.warning(
            "%s has no sft_data.json: cannot check that it was prepared for this run's pixel bounds", sft_dir
        )
    elif (metadata["min_pixels"], metadata["max_pixels"]) != (config.min_pixels, config.max_pixels):
        why = " (its box targets are pixels of that input size)" if kind == "ground" else ""
        raise SFTDataMismatchError(
            f"{kind.capitalize()} SFT data in '{sft_dir}' was prepared for min_pixels={metadata['min_pixels']}, "
            f"max_pixels={metadata['max_pixels']}{why}, but this run uses min_pixels={config.min_pixels}, "
            f"max_pixels={config.max_pixels}. Prepare it again with the training preset "
            f"(CONFIG=<the same preset> bash qwen-vl-finetune/scripts/prepare_SFT_data.sh, or --min_pixels "
            f"{config.min_pixels} --max_pixels {config.max_pixels}; or set DATA_PATH), or train with the data's values."
        )
    return path


def _resolve_model_path(name: str | None) -> str:
    if name:
        check_model_path(name)  # a missing local folder is named before anything loads
        return name
    from ground_r1.demo.tiny import ensure_tiny_model

    path = str(ensure_tiny_model())
    logger.info("no model given: the tiny offline Qwen2.5-VL (%s)", path)
    return path


def trainable_summary(model) -> dict[str, int]:
    """Parameter counts: trainable / frozen (logged). Under ZeRO-3 a partitioned parameter holds 0 elements
    locally; its full size is ``ds_numel``."""

    trainable = sum(parameter_size(p) for p in model.parameters() if p.requires_grad)
    frozen = sum(parameter_size(p) for p in model.parameters() if not p.requires_grad)
    return {"trainable": trainable, "frozen": frozen}


class GroundR1SFTTrainer(ResumeFixesMixin, SFTTrainer):
    """TRL's SFTTrainer with the resume fixes (``ground_r1.trainer.resume``): a resumed run loads every weight of
    its checkpoint (HF skipped 56 of the tiny model's 57 tensors), and a finished one trains no extra step."""


def build_trainer(script_args: SFTScriptArguments, config: GroundR1SFTConfig) -> SFTTrainer:
    """Steps 1-4 of the module docstring: data, processor, model, freezing, trainer.

    Raises:
        ValueError: an unknown ``sft_kind`` (the valid names are listed), or see :func:`resolve_sft_data`.
    """
    if script_args.sft_kind not in KINDS:
        raise ValueError(f"--sft_kind must be one of {', '.join(KINDS)}, got {script_args.sft_kind!r}")
    data_file = resolve_sft_data(script_args, config)
    examples = load_sft_examples(data_file, limit=script_args.max_train_examples)
    logger.info("%d %s SFT example(s) from %s", len(examples), script_args.sft_kind, data_file)

    model_path = _resolve_model_path(script_args.model_name_or_path)
    processor = load_processor(model_path, min_pixels=config.min_pixels, max_pixels=config.max_pixels)
    model = load_model(model_path, dtype=script_args.model_dtype, attn_implementation=script_args.attn_implementation)
    if config.freeze_vision_tower:
        freeze_vision_tower(model, freeze_projector=config.freeze_projector)
    counts = trainable_summary(model)
    logger.info("parameters: %d trainable, %d frozen", counts["trainable"], counts["frozen"])

    trainer = GroundR1SFTTrainer(
        model=model,
        args=config,
        train_dataset=examples_to_dataset(examples),
        data_collator=SFTCollator(processor, add_vision_id=config.add_vision_id),
        processing_class=processor,
    )
    trainer.ground_r1_data_file = data_file  # for the info file
    return trainer


def write_info(trainer: SFTTrainer, script_args: SFTScriptArguments, config: GroundR1SFTConfig) -> Path:
    """``ground_r1_sft.json`` in the output folder: how the checkpoint was trained and how to evaluate it."""
    out = Path(config.output_dir)
    kind = script_args.sft_kind
    info = {
        "sft_kind": kind,
        "model_name_or_path": script_args.model_name_or_path,
        "data_file": str(getattr(trainer, "ground_r1_data_file", "")),
        "min_pixels": config.min_pixels,
        "max_pixels": config.max_pixels,
        "add_vision_id": config.add_vision_id,
        "freeze_vision_tower": config.freeze_vision_tower,
        "freeze_projector": config.freeze_projector,
        "global_step": trainer.state.global_step,
        "evaluate_with": [EVAL_LAUNCHERS[kind].format(out=out), GENERAL_EVAL_LAUNCHER.format(out=out)],
        "script_args": asdict(script_args),
    }
    path = out / INFO_NAME
    path.write_text(json.dumps(info, indent=2) + "\n")
    return path


def train_sft(script_args: SFTScriptArguments, config: GroundR1SFTConfig) -> Path:
    """Run the recipe (module docstring) and return the output folder holding the final checkpoint."""
    from ground_r1.checkpoints import resolve_resume

    # Checked before any work: an explicit checkpoint that is incomplete fails now, not after data preparation.
    resume = resolve_resume(
        config.resume_from_checkpoint, config.output_dir, require_optimizer=not config.save_only_model
    )
    trainer = build_trainer(script_args, config)
    trainer.train(resume_from_checkpoint=resume)
    # Final HF checkpoint in output_dir (under ZeRO-3 the DeepSpeed config must gather 16-bit weights on save).
    trainer.save_model(config.output_dir)
    if trainer.is_world_process_zero():
        write_info(trainer, script_args, config)
        out = Path(config.output_dir).absolute()
        logger.info("checkpoint saved to %s", out)
        logger.info("evaluate it with: %s", EVAL_LAUNCHERS[script_args.sft_kind].format(out=out))
        logger.info("general benchmarks: %s", GENERAL_EVAL_LAUNCHER.format(out=out))
    return Path(config.output_dir)


__all__ = [
    "GroundR1SFTConfig",
    "SFTScriptArguments",
    "build_trainer",
    "examples_to_dataset",
    "resolve_sft_data",
    "train_sft",
    "trainable_summary",
]
