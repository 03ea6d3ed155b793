"""The loss batch: how a step's trajectories are laid out for the log-prob passes (loss, reference, old).

TRL scores the padded batch it is handed, ``[B, P + C]`` (prompts left-padded to the longest prompt,
completions right-padded to the longest completion). A trajectory that answered in round 1 is padded to the
width of a 5-round one, every crop's image tokens included, and every padded position is paid for in the
forward and backward (`benchmarks/perf`: the tiny run's loss batch was 55 % tokens). This module owns the
layout instead; `GroundR1Trainer._get_per_token_logps_and_entropies` runs it and writes the log-probs back to
TRL's ``[B, C]`` layout, so `_compute_loss` (loss types, normalisation, KL, metrics) stays TRL's, untouched.

Layouts (config `loss_batch_layout`):

- ``padded``: TRL's own path (`GRPOTrainer._get_per_token_logps_and_entropies`), kept for comparison.
- ``bucketed``: each trajectory's real tokens (padding dropped); trajectories sorted by length and cut into the
  fewest buckets whose fill (tokens / (rows x longest row)) is at least `min_fill`; one forward per bucket,
  right-padded to its own longest row. Any attention implementation; the default on CPU.
- ``packed`` (padding-free): the trajectories of a chunk concatenated into ONE row, no padding at all. Each
  trajectory keeps its own positions: M-RoPE positions exactly as the padded batch gives them
  (`get_rope_index`, image tokens marked by ``mm_token_type_ids``), plus text positions that restart at 0 per
  trajectory, which is how transformers sees the sequence boundaries (flash-attention varlen on GPU; sdpa and
  eager build a block-diagonal ``[W x W]`` mask instead, correct but quadratic in the packed width: tests only).

Only the positions the caller asks for are scored (`score_mask`; the trainer passes the loss mask, so injected
crop turns are never put through the LM head, SPEC §10).

    LossBatch.forwards[k]          one model forward: R rows x W positions
      input_ids, segment_ids       [R, W]  segment = the trajectory's row in the padded batch, -1 on padding
      attention_mask               [R, W]  (bucketed); None (packed: the positions carry the boundaries)
      position_ids                 [3, R, W] M-RoPE (bucketed), [4, R, W] text + M-RoPE (packed)
      mm_token_type_ids            [R, W]  1 on image tokens
      score_positions              [R, W]  bool: tokens whose log-prob is wanted (predicted from the position before)
      target_rows, target_cols     [n]     where the n scored log-probs go in the [B, C] output (row-major order)
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable

import torch

from ground_r1.trainer.completion_head import ScoredHead

LAYOUTS = ("auto", "padded", "bucketed", "packed")
# Attention implementations that read per-sequence boundaries from the positions without a [W x W] mask.
VARLEN_ATTENTION = ("flash_attention_2", "flash_attention_3")


def resolve_layout(requested: str, attn_implementation: str | None) -> str:
    """`auto`: padding-free packing where attention is varlen (flash-attention), length bucketing elsewhere."""
    if requested not in LAYOUTS:
        raise ValueError(f"loss_batch_layout must be one of {', '.join(LAYOUTS)}, got {requested!r}")
    if requested != "auto":
        return requested
    return "packed" if is_varlen_attention(attn_implementation) else "bucketed"


def is_varlen_attention(attn_implementation: str | None) -> bool:
    name = attn_implementation or ""
    return name in VARLEN_ATTENTION or (name.startswith("kernels-community/") and "flash" in name)


@dataclass(frozen=True)
class LossForward:
    """One model forward of a log-prob pass (see the module docstring for the shapes)."""

    input_ids: torch.Tensor
    segment_ids: torch.Tensor
    attention_mask: torch.Tensor | None
    position_ids: torch.Tensor
    mm_token_type_ids: torch.Tensor
    score_positions: torch.Tensor
    target_rows: torch.Tensor
    target_cols: torch.Tensor
    pixel_values: torch.Tensor | None = None
    image_grid_thw: torch.Tensor | None = None

    @property
    def positions(self) -> int:
        return self.input_ids.numel()

    @property
    def real_positions(self) -> int:
        return int((self.segment_ids >= 0).sum().item())

    def model_inputs(self) -> dict:
        inputs = {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "position_ids": self.position_ids,
            "mm_token_type_ids": self.mm_token_type_ids,
        }
        if self.pixel_values is not None:
            inputs["pixel_values"] = self.pixel_values
            inputs["image_grid_thw"] = self.image_grid_thw
        return inputs


@dataclass(frozen=True)
class LossBatch:
    layout: str
    forwards: list[LossForward]
    rows: int  # B of the padded batch
    completion_width: int  # C of the padded batch (the output's width)
    padded_positions: int  # B x (P + C): what TRL's layout processes
    scored: int = field(default=0)  # positions put through the LM head

    @property
    def positions(self) -> int:
        return sum(f.positions for f in self.forwards)

    @property
    def real_positions(self) -> int:
        return sum(f.real_positions for f in self.forwards)

    @property
    def fill(self) -> float:
        """Share of the processed positions that hold a token (1.0 when packed)."""
        return self.real_positions / max(1, self.positions)

    def stats(self) -> dict[str, float]:
        return {
            "layout": self.layout,
            "forwards": len(self.forwards),
            "positions": self.positions,
            "real_positions": self.real_positions,
            "padded_positions": self.padded_positions,
            "scored_positions": self.scored,
            "fill": self.fill,
            "padded_fill": self.real_positions / max(1, self.padded_positions),
        }


# -- planning ------------------------------------------------------------------------------------------------------
def plan_buckets(
    lengths: list[int], min_fill: float, max_rows: int | None = None, min_buckets: int = 0
) -> list[list[int]]:
    """The fewest buckets (then the fewest padded positions) of rows, each bucket holding rows of similar length
    with fill >= `min_fill` and at most `max_rows` rows. Exact: buckets are runs of the rows sorted by length
    (a dynamic programme over that order). Rows inside a bucket keep their original order. `min_buckets`: split
    the largest buckets until there are at least that many (ranks must run as many forwards as each other)."""
    if not 0.0 < min_fill <= 1.0:
        raise ValueError(f"min_fill must be in (0, 1], got {min_fill}")
    if max_rows is not None and max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    n = len(order)
    prefix = [0]
    for i in order:
        prefix.append(prefix[-1] + lengths[i])
    inf = (float("inf"), float("inf"))
    best: list[tuple[float, float]] = [(0, 0)] + [inf] * n
    cut = [0] * (n + 1)
    for end in range(1, n + 1):
        for start in range(end - 1, -1, -1):
            rows = end - start
            if max_rows is not None and rows > max_rows:
                break
            padded = rows * lengths[order[start]]  # the longest row of a run sorted by length is its first
            if rows > 1 and (prefix[end] - prefix[start]) < min_fill * padded:
                continue  # an earlier start adds longer rows, which can raise the fill again: keep looking
            cand = (best[start][0] + 1, best[start][1] + padded)
            if cand < best[end]:
                best[end], cut[end] = cand, start
    buckets, end = [], n
    while end > 0:
        buckets.append(sorted(order[cut[end] : end]))
        end = cut[end]
    return _split_to(buckets[::-1], min_buckets)


def plan_packs(num_rows: int, max_rows: int | None = None, min_packs: int = 0) -> list[list[int]]:
    """Packed: every trajectory in one row, or chunks of `max_rows` trajectories (TRL's `batch_size`)."""
    step = max_rows or max(num_rows, 1)
    return _split_to([list(range(s, min(s + step, num_rows))) for s in range(0, num_rows, step)], min_packs)


def _split_to(groups: list[list[int]], count: int) -> list[list[int]]:
    """Halve the group with the most rows until there are `count` groups (or every group holds one row)."""
    groups = [list(g) for g in groups]
    while len(groups) < count:
        k = max(range(len(groups)), key=lambda i: len(groups[i]))
        if len(groups[k]) < 2:
            break
        half = len(groups[k]) // 2
        groups[k : k + 1] = [groups[k][:half], groups[k][half:]]
    return groups


# -- building ------------------------------------------------------------------------------------------------------
@dataclass
class _Segment:
    """One trajectory's real tokens, taken out of the padded batch."""

    row: int
    ids: torch.Tensor  # [n]
    positions: torch.Tensor  # [3, n]
    mm: torch.Tensor  # [n]
    scored: torch.Tensor  # [n] bool
    cols: torch.Tensor  # [n] completion column of each token in the padded output, -1 for prompt tokens
    pixel_rows: tuple[int, int]
    images: tuple[int, int]


def build_loss_batch(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    logits_to_keep: int,
    *,
    layout: str,
    position_ids: torch.Tensor | None = None,
    score_mask: torch.Tensor | None = None,
    mm_token_type_ids: torch.Tensor | None = None,
    pixel_values: torch.Tensor | None = None,
    image_grid_thw: torch.Tensor | None = None,
    num_images: list[int] | None = None,
    max_rows: int | None = None,
    min_fill: float = 0.9,
    pad_token_id: int = 0,
    min_forwards: int = 0,
) -> LossBatch:
    """Lay out the padded batch TRL hands over (``input_ids`` [B, L] = prompt + completion, the last
    `logits_to_keep` columns the completion) as `layout` ("bucketed" or "packed").

    position_ids: the padded batch's M-RoPE positions [3, B, L] (the model's `get_rope_index`); None: 1-D
        positions over each row's real tokens.
    score_mask: [B, logits_to_keep], which completion tokens to score (default: every completion token with
        attention, what TRL scores). Tokens outside it come back as log-prob 0.
    min_forwards: at least this many forwards (groups split), so that every rank runs as many (ZeRO-3 gathers
        parameters collectively in each forward and backward).

    Raises:
        ValueError: an unknown layout, a row with no tokens, or a scored token with no token before it.
    """
    if layout not in ("bucketed", "packed"):
        raise ValueError(f"build_loss_batch lays out 'bucketed' or 'packed', got {layout!r}")
    rows, width = input_ids.shape
    completion_start = width - logits_to_keep
    real = attention_mask.bool()
    wanted = real[:, completion_start:].clone()
    if score_mask is not None:
        wanted &= score_mask.bool()
    if mm_token_type_ids is None:
        mm_token_type_ids = torch.zeros_like(input_ids)
    pixel_bounds, image_bounds = _image_bounds(rows, pixel_values, image_grid_thw, num_images)

    segments = []
    for i in range(rows):
        idx = real[i].nonzero().squeeze(1)
        if idx.numel() == 0:
            raise ValueError(f"row {i} of the loss batch has no tokens (its attention mask is all 0)")
        if position_ids is None:
            pos = torch.arange(idx.numel(), device=input_ids.device).unsqueeze(0).expand(3, -1)
        else:
            pos = position_ids[:, i, idx]
        cols = idx - completion_start
        scored = torch.zeros(idx.numel(), dtype=torch.bool, device=input_ids.device)
        in_completion = cols >= 0
        scored[in_completion] = wanted[i, cols[in_completion]]
        if bool(scored[0]):
            raise ValueError(
                f"row {i}: its first token is a scored completion token with no token before it (an empty prompt)"
            )
        segments.append(
            _Segment(
                i,
                input_ids[i, idx],
                pos,
                mm_token_type_ids[i, idx],
                scored,
                torch.where(in_completion, cols, torch.full_like(cols, -1)),
                pixel_bounds[i],
                image_bounds[i],
            )
        )

    if layout == "bucketed":
        groups = plan_buckets([len(s.ids) for s in segments], min_fill, max_rows, min_forwards)
        forwards = [_bucket(segments, g, pixel_values, image_grid_thw, pad_token_id) for g in groups]
    else:
        forwards = [_pack(segments, g, pixel_values, image_grid_thw) for g in plan_packs(rows, max_rows, min_forwards)]
    return LossBatch(
        layout,
        forwards,
        rows,
        logits_to_keep,
        rows * width,
        scored=int(sum(f.score_positions.sum().item() for f in forwards)),
    )


def _image_bounds(rows, pixel_values, image_grid_thw, num_images):
    """Per row: its slice of pixel rows and of images (TRL's convention: images in row order)."""
    if pixel_values is None or image_grid_thw is None:
        return [(0, 0)] * rows, [(0, 0)] * rows
    if num_images is None or len(num_images) != rows:
        raise ValueError(f"num_images must give the image count of each of the {rows} rows, got {num_images!r}")
    per_image = image_grid_thw.prod(dim=-1).tolist()
    if len(per_image) != sum(num_images) or sum(per_image) != pixel_values.shape[0]:
        raise ValueError(
            f"image_grid_thw ({len(per_image)} images, {sum(per_image)} pixel rows) does not match "
            f"num_images (sum {sum(num_images)}) and pixel_values ({pixel_values.shape[0]} rows)"
        )
    pixels, images, p, k = [], [], 0, 0
    for n in num_images:
        rows_here = sum(per_image[k : k + n])
        pixels.append((p, p + rows_here))
        images.append((k, k + n))
        p, k = p + rows_here, k + n
    return pixels, images


def _images_of(segments: list[_Segment], pixel_values, image_grid_thw):
    if pixel_values is None or image_grid_thw is None:
        return None, None
    pv = torch.cat([pixel_values[s.pixel_rows[0] : s.pixel_rows[1]] for s in segments], dim=0)
    grid = torch.cat([image_grid_thw[s.images[0] : s.images[1]] for s in segments], dim=0)
    return pv, grid


def _targets(score_positions: torch.Tensor, cols: torch.Tensor, seg: torch.Tensor):
    """Output coordinates of the scored tokens, in the row-major order of `score_positions`."""
    return seg[score_positions], cols[score_positions]


def _bucket(segments: list[_Segment], group: list[int], pixel_values, image_grid_thw, pad_token_id: int) -> LossForward:
    parts = [segments[i] for i in group]
    width = max(len(s.ids) for s in parts)
    r, device = len(parts), parts[0].ids.device
    ids = torch.full((r, width), pad_token_id, dtype=torch.long, device=device)
    seg = torch.full((r, width), -1, dtype=torch.long, device=device)
    att = torch.zeros((r, width), dtype=torch.long, device=device)
    pos = torch.zeros((3, r, width), dtype=torch.long, device=device)
    mm = torch.zeros((r, width), dtype=parts[0].mm.dtype, device=device)
    score = torch.zeros((r, width), dtype=torch.bool, device=device)
    cols = torch.full((r, width), -1, dtype=torch.long, device=device)
    for j, s in enumerate(parts):
        n = len(s.ids)
        ids[j, :n], seg[j, :n], att[j, :n] = s.ids, s.row, 1
        pos[:, j, :n], mm[j, :n], score[j, :n], cols[j, :n] = s.positions, s.mm, s.scored, s.cols
    rows_out, cols_out = _targets(score, cols, seg)
    pv, grid = _images_of(parts, pixel_values, image_grid_thw)
    return LossForward(ids, seg, att, pos, mm, score, rows_out, cols_out, pv, grid)


def _pack(segments: list[_Segment], group: list[int], pixel_values, image_grid_thw) -> LossForward:
    parts = [segments[i] for i in group]
    ids = torch.cat([s.ids for s in parts]).unsqueeze(0)
    seg = torch.cat([torch.full_like(s.ids, s.row) for s in parts]).unsqueeze(0)
    text = torch.cat([torch.arange(len(s.ids), device=s.ids.device) for s in parts])
    mrope = torch.cat([s.positions for s in parts], dim=1)
    # Row 0: text positions restarting at 0 per trajectory (transformers finds the boundaries there); 1-3: M-RoPE.
    pos = torch.cat([text.unsqueeze(0), mrope], dim=0).unsqueeze(1)  # [4, 1, W]
    mm = torch.cat([s.mm for s in parts]).unsqueeze(0)
    score = torch.cat([s.scored for s in parts]).unsqueeze(0)
    cols = torch.cat([s.cols for s in parts]).unsqueeze(0)
    rows_out, cols_out = _targets(score, cols, seg)
    pv, grid = _images_of(parts, pixel_values, image_grid_thw)
    return LossForward(ids, seg, None, pos, mm, score, rows_out, cols_out, pv, grid)


# -- running -------------------------------------------------------------------------------------------------------
def score_loss_batch(
    model,
    batch: LossBatch,
    head: ScoredHead,
    *,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run each forward of `batch` through `model` (its scored head, `completion_head.add_scored_head`) and
    return TRL's layout: log-probs [B, C] (float32) and, when `head.outputs` has "entropy", entropies [B, C];
    0 at every position that was not scored."""
    logps, entropies, rows, cols = [], [], [], []
    for fwd in batch.forwards:
        with autocast():
            out = model(**fwd.model_inputs(), score_positions=fwd.score_positions, scored_head=head)
        logps.append(out.log_probs)
        entropies.append(out.entropy)
        rows.append(fwd.target_rows)
        cols.append(fwd.target_cols)
    values = torch.cat(logps)
    where = (torch.cat(rows).to(values.device), torch.cat(cols).to(values.device))
    shape = (batch.rows, batch.completion_width)
    per_token_logps = values.new_zeros(shape).index_put(where, values)
    if "entropy" not in head.outputs:
        return per_token_logps, None
    ent = torch.cat(entropies)
    return per_token_logps, ent.new_zeros(shape).index_put(where, ent)
