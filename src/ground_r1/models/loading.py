"""Model and processor loading: the one place that loads a checkpoint of any supported family in this project.

- the family (``ground_r1.models.families``) is read from the checkpoint's ``config.json`` ``model_type``, never
  from its folder name; it picks the model and processor classes, the fallback chat template, and the projector
  to freeze, and is recorded on the processor (``family_of_processor``);

- attention: ``flash_attention_2`` when the package is importable (GPU), else ``sdpa`` (logged);
- dtype: bf16 on GPU, fp32 on CPU (overridable);
- min/max pixels passed explicitly to the image processor (SPEC §10: the release's setting may not have
  taken effect);
- the CPU processor workaround (ENVIRONMENT.md): without torchvision, ``AutoProcessor`` fails on Qwen2.5-VL's
  video processor, so the processor is assembled from the tokenizer and the PIL image processor with no video
  processor; it saves its parts separately (``ProcessorMixin.save_pretrained`` fails on a ``None`` part);
- the vision tower (and projector) can be frozen (SPEC §5);
- ``trust_remote_code`` is off unless the caller asks for it (no code from a checkpoint runs by default);
- the checkpoint's generation_config is never used silently: callers pass explicit sampling parameters
  (``ground_r1.rollout.sampling``); :func:`load_model` records what the checkpoint said and logs it.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_MIN_PIXELS = 3136  # SPEC §2, release
DEFAULT_MAX_PIXELS = 401408  # SPEC §2, release


class ModelPathError(FileNotFoundError):
    """A MODEL_PATH that names a local folder which is not there (the message names the path)."""


def looks_local(model_path: str) -> bool:
    """A MODEL_PATH that starts with ``/``, ``./``, ``../`` or ``~``, or holds more than one ``/``, is a local
    folder; anything else (``Qwen/Qwen2.5-VL-7B-Instruct``) may be a hub id."""
    text = str(model_path)
    return text.startswith(("/", "./", "../", "~")) or text.count("/") > 1


def check_model_path(model_path: str | Path | None) -> None:
    """Before anything is loaded: a local MODEL_PATH must be a model folder. A hub id is left to the hub.

    Raises:
        ModelPathError: the folder is missing, or holds no config.json (path named).
    """
    if model_path is None:
        return
    text = str(model_path)
    folder = Path(text).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise ModelPathError(f"MODEL_PATH {text}: not a model folder (no config.json in {folder})")
        return
    if looks_local(text) or folder.exists():
        raise ModelPathError(
            f"MODEL_PATH {text}: no such folder ({folder.resolve() if not text.startswith('~') else folder}). A path "
            "starting with /, ./, ../ or ~, or with more than one '/', is read as a local folder; a hub model id "
            "has one '/' (Qwen/Qwen2.5-VL-7B-Instruct)"
        )


def make_processor(tokenizer, image_processor, video_processor=None, chat_template: str | None = None, family=None):
    """Assemble ``family``'s processor (default: Qwen2.5-VL) from its parts (video processor optional); the family
    is recorded on it."""
    from ground_r1.models.families import DEFAULT_FAMILY, attach_family, get_family

    fam = family if family is not None and not isinstance(family, str) else get_family(family or DEFAULT_FAMILY)
    template = chat_template or getattr(tokenizer, "chat_template", None)
    processor = fam.processor_class()(
        image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor, chat_template=template
    )
    return attach_family(processor, fam)


def save_processor(processor, directory: str | Path) -> None:
    """Save tokenizer, image processor and chat template separately (works with a ``None`` video processor)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = processor.tokenizer
    if processor.chat_template and not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = processor.chat_template
    tokenizer.save_pretrained(directory)
    processor.image_processor.save_pretrained(directory)
    if processor.chat_template:
        (directory / "chat_template.jinja").write_text(processor.chat_template)
    if getattr(processor, "video_processor", None) is not None:
        processor.video_processor.save_pretrained(directory)


def torchvision_available() -> bool:
    return importlib.util.find_spec("torchvision") is not None


def load_processor(
    model_path: str | Path,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    *,
    trust_remote_code: bool = False,
):
    """Processor of a checkpoint of any supported family (read from its config.json) with min/max pixels set
    explicitly on the image processor. Patch, merge and temporal patch size come from the checkpoint's
    preprocessor_config.json (every family here uses Qwen2-VL's image processor: Qwen3-VL's says patch 16).

    Uses the PIL image processor and no video processor when torchvision is absent (CPU machines).
    ``trust_remote_code``: let the tokenizer run code shipped with the checkpoint; off unless asked (the families
    here need none: transformers has them built in).

    Raises:
        FamilyError: config.json names no supported family (the message lists them).
    """
    from transformers import AutoTokenizer

    from ground_r1.models.families import family_of_checkpoint

    model_path = str(model_path)
    family = family_of_checkpoint(model_path, trust_remote_code=bool(trust_remote_code))
    tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=bool(trust_remote_code))
    # Left padding: generation appends on the right of every row of a batch.
    tokenizer.padding_side = "left"
    image_processor = family.image_processor_class().from_pretrained(
        model_path, size={"shortest_edge": int(min_pixels), "longest_edge": int(max_pixels)}
    )
    chat_template = getattr(tokenizer, "chat_template", None)
    template_file = Path(model_path) / "chat_template.jinja"
    if template_file.is_file():
        chat_template = template_file.read_text()
    if not chat_template:
        import trl.chat_template_utils as templates

        logger.warning("%s has no chat template: using TRL's %s (%s)", model_path, family.chat_template, family.title)
        chat_template = getattr(templates, family.chat_template)
    processor = make_processor(tokenizer, image_processor, chat_template=chat_template, family=family)
    processor.min_pixels, processor.max_pixels = int(min_pixels), int(max_pixels)
    return processor


def choose_attention(requested: str | None = None) -> str:
    """``flash_attention_2`` when installed and a GPU is present, else ``sdpa``. An explicit request wins;
    asking for flash-attention without it raises with what to do."""
    import torch
    from transformers.utils import is_flash_attn_2_available

    if requested and requested != "auto":
        if requested == "flash_attention_2" and not is_flash_attn_2_available():
            raise ImportError(
                "attn_implementation='flash_attention_2' was requested but flash-attn is not installed "
                "(it needs CUDA): run `bash setup.sh --gpu`, or pass --attn_implementation sdpa"
            )
        return requested
    if torch.cuda.is_available() and is_flash_attn_2_available():
        return "flash_attention_2"
    return "sdpa"


def default_dtype(device: str | None = None):
    import torch

    on_gpu = torch.cuda.is_available() if device is None else device.startswith("cuda")
    return torch.bfloat16 if on_gpu else torch.float32


def resolve_dtype(dtype: Any):
    import torch

    if dtype in (None, "auto"):
        return default_dtype()
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {
        "bf16": torch.bfloat16,
        "bfloat16": torch.bfloat16,
        "fp16": torch.float16,
        "float16": torch.float16,
        "fp32": torch.float32,
        "float32": torch.float32,
    }
    if dtype not in names:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {sorted(names)} or 'auto'")
    return names[dtype]


@dataclass
class CheckpointGenerationDefaults:
    """What the checkpoint's generation_config asked for. Recorded and logged; never applied (SPEC §2)."""

    do_sample: bool | None
    temperature: float | None
    top_k: int | None
    top_p: float | None
    repetition_penalty: float | None


def load_model(
    model_path: str | Path,
    *,
    dtype: Any = "auto",
    attn_implementation: str | None = "auto",
    freeze_vision: bool = False,
    device_map: Any = None,
    trust_remote_code: bool = False,
):
    """Load a checkpoint of any supported family for conditional generation with the project's conventions (see
    module docstring); the class is the family's, from config.json's ``model_type``.

    ``trust_remote_code``: run modelling code shipped with the checkpoint; off unless asked (the classes are
    transformers' own, which need none).

    Raises:
        FamilyError: config.json names no supported family (the message lists them).
    """
    from ground_r1.models.families import family_of_config
    from transformers import AutoConfig

    attn = choose_attention(attn_implementation)
    torch_dtype = resolve_dtype(dtype)
    config = AutoConfig.from_pretrained(str(model_path), trust_remote_code=bool(trust_remote_code))
    family = family_of_config(config, where=f"{model_path} (config.json)")
    logger.info(
        "loading %s (%s, model_type %s; attention=%s, dtype=%s)",
        model_path,
        family.title,
        config.model_type,
        attn,
        torch_dtype,
    )
    model = family.model_class(config.model_type).from_pretrained(
        str(model_path),
        dtype=torch_dtype,
        attn_implementation=attn,
        device_map=device_map,
        trust_remote_code=bool(trust_remote_code),
    )
    gc = model.generation_config
    model.ground_r1_checkpoint_generation = CheckpointGenerationDefaults(
        do_sample=getattr(gc, "do_sample", None),
        temperature=getattr(gc, "temperature", None),
        top_k=getattr(gc, "top_k", None),
        top_p=getattr(gc, "top_p", None),
        repetition_penalty=getattr(gc, "repetition_penalty", None),
    )
    logger.info(
        "checkpoint generation_config (NOT used; every generate call passes explicit sampling): %s",
        model.ground_r1_checkpoint_generation,
    )
    if freeze_vision:
        freeze_vision_tower(model)
    return model


def vision_tower(model):
    """The vision encoder module of ``model``'s family (``model.model.visual`` in transformers 5)."""
    from ground_r1.models.families import family_of_model

    return family_of_model(model).vision_tower(model)


def parameter_size(param) -> int:
    """A parameter's full element count; under ZeRO-3 a partitioned parameter holds 0 elements locally and its size
    is ``ds_numel`` (the log said "froze 0 vision parameters" when counted with ``numel()``)."""
    return int(getattr(param, "ds_numel", param.numel()))


def freeze_vision_tower(model, freeze_projector: bool = True) -> int:
    """Freeze the vision tower (SPEC §5), and its projector (the patch merger; Qwen3-VL's deepstack mergers too,
    as its family says) unless told otherwise. Returns the number of frozen parameters (their full size,
    partitioned or not)."""
    from ground_r1.models.families import family_of_model

    family = family_of_model(model)
    visual = family.vision_tower(model)
    frozen = 0
    for name, param in visual.named_parameters():
        if not freeze_projector and family.is_projector(name):
            continue
        param.requires_grad_(False)
        frozen += parameter_size(param)
    logger.info("froze %d vision parameters (projector %s)", frozen, "frozen" if freeze_projector else "trained")
    return frozen
