"""A tiny model of each family built offline: the real architecture, random weights, a locally trained tokenizer.

    python -m ground_r1.demo.tiny OUT_DIR [--seed 0] [--geometry tiny|3b|7b] [--family qwen2_5_vl]
    python -m ground_r1.demo.tiny --default      # builds into the project cache (what setup.sh runs)
    python -m ground_r1.demo.tiny --default --family qwen3_vl   # the tiny Qwen3-VL, cached beside it

Families (``ground_r1.models.families``): ``qwen2_5_vl`` (the default, the paper's), ``qwen2_vl``, ``qwen3_vl``,
``qwen3_5``. Each is the family's own ``...ForConditionalGeneration`` with its own vision tower (Qwen3-VL: 16-px
patches and deepstack mergers; Qwen3.5: Gated-DeltaNet layers beside full attention), the family's chat template
as TRL ships it, and an image processor whose patch size is the family's (``reference_geometry``): the code under
test must read all of it from the folder. ``3b``/``7b`` geometries exist for Qwen2.5-VL only.

The folder it writes loads with the same ``from_pretrained`` code path as the real 7B (``HF_HUB_OFFLINE=1``):
``Qwen2_5_VLForConditionalGeneration`` weights and config, a ``Qwen2Tokenizer`` (byte-level BPE trained here on
a corpus of the project's own prompts, carrying every special token of Qwen2.5-VL), the stock Qwen2.5-VL chat
template (as TRL ships it), a Qwen2-VL image processor with small min/max pixels, and a generation_config that
copies the real checkpoint's (near-greedy: temperature 0.1, top_k 1), so that tests prove we never inherit it.

Deterministic for a seed: same seed, same bytes of tokenizer and weights.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ground_r1.models.families import DEFAULT_FAMILY, FAMILIES

logger = logging.getLogger(__name__)
FAMILY_NAMES = tuple(FAMILIES)

# Qwen2.5-VL's added tokens, in its own order (ids follow the BPE vocabulary here, not 151643+: no code may
# hard-code them). special=False for the tool-call tags, as in the released tokenizer_config.
QWEN_ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
)

# Bump when the recipe changes so that caches are rebuilt.
TINY_RECIPE_VERSION = 1
TINY_MIN_PIXELS = 56 * 56  # 3136, the release's min
TINY_MAX_PIXELS = 112 * 112  # 12544: a 112-px view (16 image tokens after 2x2 merge)


@dataclass(frozen=True)
class Geometry:
    """Sizes of a Qwen2.5-VL. `tiny` is the CPU test model; `3b`/`7b` are the real geometries (random init),
    used by the GPU benchmark."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    mrope_section: tuple[int, int, int]
    vision_depth: int
    vision_hidden_size: int
    vision_intermediate_size: int
    vision_num_heads: int
    fullatt_block_indexes: tuple[int, ...]
    tie_word_embeddings: bool = False
    extra: dict = field(default_factory=dict)


GEOMETRIES: dict[str, Geometry] = {
    # head_dim = 64/4 = 16; sum(mrope_section) must be head_dim/2 = 8.
    "tiny": Geometry(
        vocab_size=1024,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        mrope_section=(2, 3, 3),
        vision_depth=2,
        vision_hidden_size=32,
        vision_intermediate_size=64,
        vision_num_heads=2,
        fullatt_block_indexes=(1,),
    ),
    # Qwen2.5-VL-3B-Instruct: text 2048 x 36 layers, 16 heads / 2 kv, head_dim 128, mrope (16, 24, 24);
    # vision 1280 x 32 blocks, 16 heads, intermediate 3420, full attention at 7/15/23/31; tied embeddings.
    "3b": Geometry(
        vocab_size=151936,
        hidden_size=2048,
        intermediate_size=11008,
        num_hidden_layers=36,
        num_attention_heads=16,
        num_key_value_heads=2,
        mrope_section=(16, 24, 24),
        vision_depth=32,
        vision_hidden_size=1280,
        vision_intermediate_size=3420,
        vision_num_heads=16,
        fullatt_block_indexes=(7, 15, 23, 31),
        tie_word_embeddings=True,
    ),
    # Qwen2.5-VL-7B-Instruct: text 3584 x 28 layers, 28 heads / 4 kv, head_dim 128.
    "7b": Geometry(
        vocab_size=152064,
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        mrope_section=(16, 24, 24),
        vision_depth=32,
        vision_hidden_size=1280,
        vision_intermediate_size=3420,
        vision_num_heads=16,
        fullatt_block_indexes=(7, 15, 23, 31),
    ),
}


def _tokenizer_corpus() -> list[str]:
    """Text the BPE is trained on: the release prompt, the formats the model must write, answers and numbers.
    Enough for common words and tags (`<think>`, `<box>`, `[12,34,56,78]`) to become short token sequences."""
    from ground_r1.prompt import DEFAULT_SYSTEM_PROMPT, grounding_text

    corpus = [DEFAULT_SYSTEM_PROMPT, "Picture 1: Picture 2: Picture 3: Picture 4: Picture 5:"]
    questions = [
        "What colour is the dot inside the orange card?",
        "What is written on the sign?",
        "Which option is correct?",
        "Is the cat on the left of the table? Answer yes or no.",
        "Locate the purple card in this image and output the bbox coordinates in JSON format.",
        "Please only give the final answer of the Question:",
    ]
    for q in questions:
        corpus.append(grounding_text(q, 448, 336))
    words = (
        "red green blue yellow orange purple cyan white black gray card dot inside left right top bottom "
        "yes no the a an of in on is are what which where how many colour color answer question image region "
        "box think reasoning final crop cropped zoom look see read text sign number object person car"
    ).split()
    corpus += [" ".join(words[i:] + words[:i]) for i in range(len(words))]
    for i in range(300):
        a, b, c, d = (i * 7) % 448, (i * 13) % 336, (i * 7) % 448 + 40, (i * 13) % 336 + 40
        corpus.append(f"<think> The {words[i % len(words)]} region. </think> <box>[{a},{b},{c},{d}]</box>")
        corpus.append(f"<think> I can see it. </think> <answer> {words[(i * 3) % len(words)]} </answer>")
        corpus.append(f'{{"bbox_2d": [{a}, {b}, {c}, {d}], "label": "card"}}')
    corpus += ["A. B. C. D. E. (A) (B) (C) (D) (E) 0 1 2 3 4 5 6 7 8 9"] * 20
    return corpus


def build_tokenizer(vocab_size: int):
    """Train a byte-level BPE with Qwen's pre-tokenizer and wrap it as a `Qwen2Tokenizer`."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import AddedToken, Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX
    from tokenizers import Regex

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    n_added = len(QWEN_ADDED_TOKENS)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - n_added,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
        min_frequency=2,
    )
    bpe.train_from_iterator(_tokenizer_corpus(), trainer=trainer)
    state = json.loads(bpe.to_str())
    vocab = state["model"]["vocab"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in state["model"]["merges"]]
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",  # the instruct checkpoint's eos
        pad_token="<|endoftext|>",
        errors="replace",
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
        model_max_length=32768,
    )
    tokenizer.add_tokens([AddedToken(t, special=s, normalized=False) for t, s in QWEN_ADDED_TOKENS])
    tokenizer.add_special_tokens(
        {
            "additional_special_tokens": [
                t for t, s in QWEN_ADDED_TOKENS if s and t not in ("<|endoftext|>", "<|im_end|>")
            ]
        }
    )
    return tokenizer


def build_processor(
    tokenizer, min_pixels: int = TINY_MIN_PIXELS, max_pixels: int = TINY_MAX_PIXELS, family: str = DEFAULT_FAMILY
):
    """The family's processor: its chat template (TRL's copy), a PIL image processor with the family's released
    patch / merge size (``reference_geometry``), no video processor."""
    import trl.chat_template_utils as templates

    from ground_r1.models.families import attach_family, get_family
    from ground_r1.models.loading import make_processor

    fam = get_family(family)
    geometry = fam.reference_geometry
    template = getattr(templates, fam.chat_template)
    image_processor = fam.image_processor_class()(
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        patch_size=geometry.patch_size,
        merge_size=geometry.merge_size,
        temporal_patch_size=geometry.temporal_patch_size,
    )
    tokenizer.chat_template = template
    return attach_family(make_processor(tokenizer, image_processor, chat_template=template, family=fam), fam)


def _qwen2_5_vl_config(ids: dict, geometry: Geometry, vocab_size: int):
    from transformers import Qwen2_5_VLConfig

    head_dim = geometry.hidden_size // geometry.num_attention_heads
    if sum(geometry.mrope_section) * 2 != head_dim:
        raise ValueError(f"mrope_section {geometry.mrope_section} must sum to head_dim/2 = {head_dim // 2}")
    return Qwen2_5_VLConfig(
        text_config=dict(
            **_text_sizes(geometry, vocab_size),
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 1000000.0,
                "mrope_section": list(geometry.mrope_section),
            },
            **_text_ids(ids),
            tie_word_embeddings=geometry.tie_word_embeddings,
        ),
        vision_config=dict(
            depth=geometry.vision_depth,
            hidden_size=geometry.vision_hidden_size,
            intermediate_size=geometry.vision_intermediate_size,
            num_heads=geometry.vision_num_heads,
            out_hidden_size=geometry.hidden_size,
            fullatt_block_indexes=list(geometry.fullatt_block_indexes),
        ),
        **_special_ids(ids),
        tie_word_embeddings=geometry.tie_word_embeddings,
    )


def _text_sizes(geometry: Geometry, vocab_size: int) -> dict:
    """The text model's sizes every family's tiny config shares (its layers and widths, 32k positions)."""
    return dict(
        vocab_size=vocab_size,
        hidden_size=geometry.hidden_size,
        intermediate_size=geometry.intermediate_size,
        num_hidden_layers=geometry.num_hidden_layers,
        num_attention_heads=geometry.num_attention_heads,
        num_key_value_heads=geometry.num_key_value_heads,
        max_position_embeddings=32768,
    )


def _special_ids(ids: dict) -> dict:
    return dict(
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )


def _text_ids(ids: dict) -> dict:
    return dict(bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"])


# The other families' tiny configs. Layer counts and widths are the tiny builder's, not geometry; patch and merge
# size come from the family's reference_geometry (what its released checkpoints use), so a tiny Qwen3-VL really
# has 16-px patches and 32-px input multiples.
def _qwen2_vl_config(ids: dict, geometry: Geometry, vocab_size: int):
    from transformers import Qwen2VLConfig

    from ground_r1.models.families import get_family

    ref = get_family("qwen2_vl").reference_geometry
    return Qwen2VLConfig(
        text_config=dict(
            **_text_sizes(geometry, vocab_size),
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 1000000.0,
                "mrope_section": list(geometry.mrope_section),
            },
            **_text_ids(ids),
        ),
        vision_config=dict(
            depth=geometry.vision_depth,
            embed_dim=geometry.vision_hidden_size,
            hidden_size=geometry.hidden_size,
            mlp_ratio=2,
            num_heads=geometry.vision_num_heads,
            patch_size=ref.patch_size,
            spatial_merge_size=ref.merge_size,
            temporal_patch_size=ref.temporal_patch_size,
        ),
        **_special_ids(ids),
    )


def _qwen3_vl_vision(geometry: Geometry, ref) -> dict:
    return dict(
        depth=geometry.vision_depth,
        hidden_size=geometry.vision_hidden_size,
        intermediate_size=geometry.vision_intermediate_size,
        num_heads=geometry.vision_num_heads,
        out_hidden_size=geometry.hidden_size,
        patch_size=ref.patch_size,
        spatial_merge_size=ref.merge_size,
        temporal_patch_size=ref.temporal_patch_size,
        num_position_embeddings=64,
    )  # an 8 x 8 learned position grid, interpolated to each image


def _qwen3_vl_config(ids: dict, geometry: Geometry, vocab_size: int):
    from transformers import Qwen3VLConfig

    from ground_r1.models.families import get_family

    ref = get_family("qwen3_vl").reference_geometry
    head_dim = geometry.hidden_size // geometry.num_attention_heads  # 16: mrope sections sum to 8
    return Qwen3VLConfig(
        text_config=dict(
            **_text_sizes(geometry, vocab_size),
            head_dim=head_dim,
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 5000000.0,
                "mrope_section": [4, 2, 2],
                "mrope_interleaved": True,
            },
            **_text_ids(ids),
        ),
        vision_config=dict(_qwen3_vl_vision(geometry, ref), deepstack_visual_indexes=[0]),
        **_special_ids(ids),
    )


def _qwen3_5_config(ids: dict, geometry: Geometry, vocab_size: int):
    from transformers import Qwen3_5Config

    from ground_r1.models.families import get_family

    ref = get_family("qwen3_5").reference_geometry
    # One Gated-DeltaNet (linear attention) layer, then one full-attention layer: the released checkpoints'
    # 3:1 pattern cut to two layers. head_dim 32 with partial rotary 0.25: 8 rotary dims, mrope sections sum to 4.
    return Qwen3_5Config(
        text_config=dict(
            **_text_sizes(geometry, vocab_size),
            head_dim=32,
            linear_key_head_dim=16,
            linear_value_head_dim=16,
            linear_num_key_heads=2,
            linear_num_value_heads=4,
            layer_types=["linear_attention", "full_attention"],
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 10000000.0,
                "partial_rotary_factor": 0.25,
                "mrope_section": [2, 1, 1],
                "mrope_interleaved": True,
            },
            **_text_ids(ids),
        ),
        vision_config=_qwen3_vl_vision(geometry, ref),
        **_special_ids(ids),
    )


_CONFIG_BUILDERS = {
    "qwen2_vl": _qwen2_vl_config,
    "qwen2_5_vl": _qwen2_5_vl_config,
    "qwen3_vl": _qwen3_vl_config,
    "qwen3_5": _qwen3_5_config,
}


def build_model(tokenizer, geometry: Geometry, seed: int, family: str = DEFAULT_FAMILY):
    import torch

    from ground_r1.models.families import get_family

    fam = get_family(family)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t, _ in QWEN_ADDED_TOKENS}
    vocab_size = max(geometry.vocab_size, len(tokenizer))
    config = _CONFIG_BUILDERS[fam.name](ids, geometry, vocab_size)
    torch.manual_seed(seed)
    model = fam.model_class()(config)
    # The real Instruct checkpoint's generation_config (near-greedy). Written on purpose: training rollouts
    # must never inherit it (SPEC §2), and a test proves they do not.
    gc = model.generation_config
    gc.bos_token_id = ids["<|endoftext|>"]
    gc.pad_token_id = ids["<|endoftext|>"]
    gc.eos_token_id = [ids["<|im_end|>"], ids["<|endoftext|>"]]
    gc.do_sample = True
    gc.temperature = 0.1
    gc.top_k = 1
    gc.top_p = 0.001
    gc.repetition_penalty = 1.05
    return model


def build_tiny_model(out_dir: str | Path, seed: int = 0, geometry: str = "tiny", family: str = DEFAULT_FAMILY) -> Path:
    """Write a complete model folder (weights, config, tokenizer, processor, generation config) to out_dir.

    Written into a temporary sibling folder and renamed at the end, so a killed build never leaves a folder
    that looks complete.
    """
    from ground_r1.models.loading import save_processor

    if geometry not in GEOMETRIES:
        raise ValueError(f"unknown geometry {geometry!r}; expected one of {sorted(GEOMETRIES)}")
    from ground_r1.models.families import get_family

    family = get_family(family).name
    if family != DEFAULT_FAMILY and geometry != "tiny":
        raise ValueError(f"geometry {geometry!r} exists for {DEFAULT_FAMILY} only; {family} is built 'tiny'")
    out_dir = Path(out_dir).resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + ".partial-", dir=out_dir.parent))
    try:
        geom = GEOMETRIES[geometry]
        tokenizer = build_tokenizer(GEOMETRIES["tiny"].vocab_size)
        processor = build_processor(tokenizer, family=family)
        model = build_model(tokenizer, geom, seed, family=family)
        model.save_pretrained(tmp)
        save_processor(processor, tmp)
        (tmp / "ground_r1_tiny.json").write_text(json.dumps(_marker(seed, geometry, family), indent=2) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.chmod(0o755)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _marker(seed: int, geometry: str, family: str) -> dict:
    marker = {"recipe_version": TINY_RECIPE_VERSION, "seed": seed, "geometry": geometry}
    if family != DEFAULT_FAMILY:  # the default family's marker is unchanged: existing caches stay valid
        marker["family"] = family
    return marker


def is_built(model_dir: Path, seed: int = 0, geometry: str = "tiny", family: str = DEFAULT_FAMILY) -> bool:
    marker = Path(model_dir) / "ground_r1_tiny.json"
    if not marker.is_file():
        return False
    try:
        meta = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return meta == _marker(seed, geometry, family)


def ensure_tiny_model(model_dir: str | Path | None = None, seed: int = 0, family: str = DEFAULT_FAMILY) -> Path:
    """The tiny model folder of ``family``, built if missing or built by another recipe version."""
    from ground_r1 import paths

    model_dir = Path(model_dir) if model_dir is not None else paths.tiny_model_dir(family)
    if not is_built(model_dir, seed, family=family):
        logger.info("building the tiny offline %s into %s", family, model_dir)
        build_tiny_model(model_dir, seed=seed, family=family)
    return model_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ground_r1.demo.tiny",
        description="Build a tiny random-weight model of a Qwen-VL family (real architecture, local tokenizer) offline.",
        allow_abbrev=False,
    )
    parser.add_argument("out_dir", nargs="?", help="folder to write (omit with --default)")
    parser.add_argument(
        "--default",
        action="store_true",
        help="build into the project cache (ground_r1.paths.tiny_model_dir()) unless already built",
    )
    parser.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    parser.add_argument(
        "--geometry",
        choices=sorted(GEOMETRIES),
        default="tiny",
        help="model sizes (3b/7b: real geometry, random init; qwen2_5_vl only)",
    )
    parser.add_argument(
        "--family",
        choices=sorted(FAMILY_NAMES),
        default=DEFAULT_FAMILY,
        help=f"model family (default {DEFAULT_FAMILY}, the paper's)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.default:
        from ground_r1 import paths

        target = paths.tiny_model_dir(args.family)
        if is_built(target, args.seed, family=args.family):
            logger.info("tiny model already built: %s", target)
            return 0
        ensure_tiny_model(target, seed=args.seed, family=args.family)
        logger.info("tiny model built: %s", target)
        return 0
    if not args.out_dir:
        parser.error("give OUT_DIR or --default")
    out = build_tiny_model(args.out_dir, seed=args.seed, geometry=args.geometry, family=args.family)
    logger.info("model written to %s", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
