"""The throwaway heads of the tiny instruct recipe (``ground_r1.demo.instruct_recipe``) and their losses.

None of this is saved: the recipe's model stays a plain ``Qwen2_5_VLForConditionalGeneration``. Each head supplies
a gradient the LM loss alone does not, for one hop of grounding (docs/demo.md, "grounding taken apart hop by hop"):

- on the vision tower's output, pooled per image: per card kind (presence, quadrant, box) for a scene, the dot
  colour for a crop (``scene_loss``, ``detail_loss``);
- on each image token: its card's kind (or background) and that card's box (``token_loss``, targets from
  ``instruct_recipe.token_targets``);
- on the LM at the answer's box-opening token: the named card's box from the last hidden state and its kind from
  layer 1's output; optionally, at every digit position, the coordinate being written (``lm_box_loss``).

``hop_errors`` measures the same hops on held-out examples.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


class AuxHead:
    """The throwaway heads (module doc). On the image-token mean of each image: for a scene, per card kind
    (presence, quadrant logits, box); for a crop, the dot colour. On each image token of a scene
    (``token_targets``): its card's kind (or background) and that card's box. All give the vision tower the
    gradient the LM loss alone does not supply at init."""

    def __init__(self, hidden: int, num_kinds: int, num_details: int, seed: int):
        import torch

        gen = torch.Generator().manual_seed(seed)
        self.num_kinds = num_kinds
        self.scene = torch.nn.Linear(hidden, num_kinds * (1 + 4 + 4))
        self.detail = torch.nn.Linear(hidden, num_details)
        self.token = torch.nn.Linear(hidden, 1 + num_kinds + 4)
        self.lm_box = torch.nn.Linear(hidden, 4)
        self.lm_kind = torch.nn.Linear(hidden, num_kinds)
        self.lm_coord = torch.nn.Linear(hidden, 1)
        with torch.no_grad():
            for layer in self.layers():
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) * hidden**-0.5)
                layer.bias.zero_()

    def named_layers(self) -> dict[str, Any]:
        return {
            "scene": self.scene,
            "detail": self.detail,
            "token": self.token,
            "lm_box": self.lm_box,
            "lm_kind": self.lm_kind,
            "lm_coord": self.lm_coord,
        }

    def layers(self):
        return list(self.named_layers().values())

    def parameters(self):
        return [p for layer in self.layers() for p in layer.parameters()]

    def token_loss(self, tokens, targets, box_weight: float):
        """``tokens`` [n, hidden] image tokens of scenes, ``targets`` [n, 5] (token_targets rows)."""
        import torch.nn.functional as F

        out = self.token(tokens)
        classes = targets[:, 0].long()
        loss = F.cross_entropy(out[:, : 1 + self.num_kinds], classes)
        on_card = classes > 0
        if bool(on_card.any()):
            loss = loss + box_weight * F.mse_loss(out[on_card, 1 + self.num_kinds :], targets[on_card, 1:])
        return loss

    def scene_loss(self, pooled, targets, box_weight: float):
        import torch.nn.functional as F

        out = self.scene(pooled).view(-1, self.num_kinds, 9)
        present = targets[..., 0]
        loss = F.binary_cross_entropy_with_logits(out[..., 0], present)
        mask = present > 0
        if bool(mask.any()):
            loss = loss + F.cross_entropy(out[..., 1:5][mask], targets[..., 1][mask].long())
            loss = loss + box_weight * F.mse_loss(out[..., 5:9][mask], targets[..., 2:6][mask])
        return loss

    def detail_loss(self, pooled, targets):
        import torch.nn.functional as F

        return F.cross_entropy(self.detail(pooled), targets)


def aux_loss(
    head: AuxHead,
    tokens,
    sizes: list[int],
    examples: Sequence[Any],
    box_weight: float,
    scene_weight: float = 1.0,
    token_weight: float = 0.0,
):
    """The heads' loss on one batch. ``tokens``: the vision tower's output (LM image tokens) of every image of
    ``examples`` in order, ``sizes`` tokens per image."""
    import torch

    per_image_tokens = torch.split(tokens, sizes)
    pooled = torch.stack([t.mean(0) for t in per_image_tokens])
    aux = pooled.new_zeros(())
    per_image = [a for ex in examples for a in ex.aux]  # aligned with pooled (images in batch order)
    rows = [i for i, a in enumerate(per_image) if a is not None]
    if rows and scene_weight > 0:
        targets = torch.tensor(np.stack([per_image[i] for i in rows]))
        aux = aux + scene_weight * head.scene_loss(pooled[rows], targets, box_weight)
    per_image = [d for ex in examples for d in ex.aux_detail]
    rows = [i for i, d in enumerate(per_image) if d is not None]
    if rows:
        targets = torch.tensor([per_image[i] for i in rows])
        aux = aux + head.detail_loss(pooled[rows], targets)
    if token_weight > 0:
        per_image = [t for ex in examples for t in ex.aux_tokens]
        rows = [i for i, t in enumerate(per_image) if t is not None]
        if rows:
            feats = torch.cat([per_image_tokens[i] for i in rows])
            targets = torch.tensor(np.concatenate([per_image[i] for i in rows]))
            aux = aux + token_weight * head.token_loss(feats, targets, box_weight)
    return aux


def box_open_positions(input_ids, labels, box_open_id: int):
    """(row, position) of each answer's box-opening token (``>[``, whose successor is the first coordinate digit)
    in the supervised span: the same token in the Ground-R1 prompt's format example is not an answer."""
    import torch

    from ground_r1.sft.collator import IGNORE_INDEX

    nxt = torch.full_like(labels, IGNORE_INDEX)
    nxt[:, :-1] = labels[:, 1:]
    return ((input_ids == box_open_id) & (nxt != IGNORE_INDEX)).nonzero(as_tuple=False)


def coordinate_slots(input_ids, col: int, comma_id: int, digit_ids: set[int]) -> list[tuple[int, int]]:
    """(position, coordinate index) of every position of one answer box, from its box-opening token at ``col``,
    whose *next* token is a digit of coordinate 0..3 (``[x1,y1,x2,y2]``)."""
    slots, coord, p = [], 0, col
    while p + 1 < len(input_ids) and coord < 4:
        nxt = int(input_ids[p + 1])
        if nxt in digit_ids:
            slots.append((p, coord))
        elif nxt == comma_id:
            coord += 1
        else:
            break
        p += 1
    return slots


def answer_boxes(batch, examples: Sequence[Any], box_open_id: int):
    """Per grounding answer of the batch (its first box only): row, position of the box-opening token, the
    named card's box normalised by its frame, and its kind index."""
    pos = box_open_positions(batch["input_ids"], batch["labels"], box_open_id)
    rows, cols, boxes, kinds = [], [], [], []
    for row, col in pos.tolist():
        ex = examples[row]
        if ex.task != "grounding" or ex.target_box is None or row in rows:
            continue
        rows.append(row), cols.append(col), kinds.append(ex.target_kind)
        (x1, y1, x2, y2), (w, h) = ex.target_box, ex.target_frame
        boxes.append([x1 / w, y1 / h, x2 / w, y2 / h])
    return rows, cols, boxes, kinds


def lm_box_loss(
    head: AuxHead,
    hidden_states,
    batch,
    examples: Sequence[Any],
    box_open_id: int,
    box_weight: float,
    kind_weight: float = 0.0,
    coord_weight: float = 0.0,
    comma_id: int = -1,
    digit_ids: set[int] = frozenset(),
):
    """The LM heads' weighted loss, at the box-opening token of each grounding answer: from the LM's last hidden
    state the target box (normalised, MSE, ``box_weight``); from the first layer's output the named kind
    (cross-entropy, ``kind_weight``); optionally at every digit position the coordinate being written
    (``coord_weight``). The digits' cross-entropy says only right/wrong per digit; these dense targets train the two
    hops the digits are read through: layer 1 fetches the kind word, layer 2 copies that card's image tokens."""
    import torch
    import torch.nn.functional as F

    rows, cols, boxes, kinds = answer_boxes(batch, examples, box_open_id)
    last = hidden_states[-1]
    if not rows:
        return last.new_zeros(())
    loss = box_weight * F.mse_loss(head.lm_box(last[rows, cols]), torch.tensor(boxes, dtype=last.dtype))
    if kind_weight > 0:
        loss = loss + kind_weight * F.cross_entropy(head.lm_kind(hidden_states[1][rows, cols]), torch.tensor(kinds))
    if coord_weight > 0:
        prow, pcol, values = [], [], []
        for row, col, box in zip(rows, cols, boxes):
            for p, c in coordinate_slots(batch["input_ids"][row], col, comma_id, digit_ids):
                prow.append(row), pcol.append(p), values.append(box[c])
        pred = head.lm_coord(last[prow, pcol]).squeeze(-1)
        loss = loss + coord_weight * F.mse_loss(pred, torch.tensor(values, dtype=last.dtype))
    return loss


def hop_errors(
    head: AuxHead, tokens, hidden_states, batch, examples: Sequence[Any], box_open_id: int
) -> dict[str, float]:
    """Per-hop errors on one teacher-forced batch of grounding examples (``head_diagnostics`` of the recipe): the
    per-token head's box error, the LM box head's, in view pixels, and the layer-1 kind accuracy."""
    import torch

    w, h = examples[0].target_frame
    px = torch.tensor([w, h, w, h], dtype=tokens.dtype)
    targets = torch.tensor(np.concatenate([ex.aux_tokens[0] for ex in examples]))
    on_card = targets[:, 0] > 0
    token_box = head.token(tokens)[:, 1 + head.num_kinds :]
    rows, cols, boxes, kinds = answer_boxes(batch, examples, box_open_id)
    return {
        "token_box_mae_px": float(((token_box[on_card] - targets[on_card, 1:]).abs() * px).mean()),
        "lm_box_mae_px": float(((head.lm_box(hidden_states[-1][rows, cols]) - torch.tensor(boxes)).abs() * px).mean()),
        "lm_kind_accuracy": float(
            (head.lm_kind(hidden_states[1][rows, cols]).argmax(-1) == torch.tensor(kinds)).float().mean()
        ),
    }


def vision_pool_hook(store: dict):
    """A forward hook on the vision tower keeping its output (the LM image tokens, after the merger)."""

    def hook(module, args, output):
        store["pooler"] = output.pooler_output

    return hook
