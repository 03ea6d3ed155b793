"""Trajectories -> the tensors TRL's loss consumes (`GRPOTrainer._compute_loss`).

    prompt_ids        [B, P]  left-padded        prompt_mask      [B, P]  1 on real prompt tokens
    completion_ids    [B, C]  right-padded       completion_mask  [B, C]  1 on real completion tokens (attention)
    tool_mask         [B, C]  1 exactly on sampled tokens: TRL trains on completion_mask * tool_mask (SPEC §4)
    pixel_values      [sum of t*h*w over every image of every trajectory, D]   (originals and crops, in order)
    image_grid_thw    [total images, 3]         num_images: images per trajectory
    mm_token_type_ids [B, P+C] 1 on image tokens (prompt and injected crop turns) for M-RoPE positions

Every image of every trajectory reaches the loss forward, crops included (TRL's own path would drop them).
"""

from __future__ import annotations

import torch

from ground_r1.rollout.trajectory import Trajectory


def build_training_batch(trajectories: list[Trajectory], pad_token_id: int, image_token_id: int, device=None) -> dict:
    if not trajectories:
        raise ValueError("no trajectories to build a batch from")
    n = len(trajectories)
    p_len = max(len(t.prompt_ids) for t in trajectories)
    c_len = max(max(len(t.completion_ids) for t in trajectories), 1)
    prompt_ids = torch.full((n, p_len), pad_token_id, dtype=torch.long)
    prompt_mask = torch.zeros((n, p_len), dtype=torch.long)
    completion_ids = torch.full((n, c_len), pad_token_id, dtype=torch.long)
    completion_mask = torch.zeros((n, c_len), dtype=torch.long)
    tool_mask = torch.zeros((n, c_len), dtype=torch.long)
    sampling_logps = torch.zeros((n, c_len), dtype=torch.float32)
    for i, t in enumerate(trajectories):
        p = len(t.prompt_ids)
        prompt_ids[i, p_len - p :] = torch.tensor(t.prompt_ids, dtype=torch.long)
        prompt_mask[i, p_len - p :] = 1
        c = len(t.completion_ids)
        if c:
            completion_ids[i, :c] = torch.tensor(t.completion_ids, dtype=torch.long)
            completion_mask[i, :c] = 1
            tool_mask[i, :c] = torch.tensor(t.completion_mask, dtype=torch.long)
            sampling_logps[i, :c] = torch.tensor(t.sampling_logps, dtype=torch.float32)
    full = torch.cat([prompt_ids, completion_ids], dim=1)
    attention = torch.cat([prompt_mask, completion_mask], dim=1)
    mm_token_type_ids = (full == image_token_id).long() * attention
    images = [img for t in trajectories for img in t.images]
    batch = {
        "prompt_ids": prompt_ids,
        "prompt_mask": prompt_mask,
        "completion_ids": completion_ids,
        "completion_mask": completion_mask,
        "tool_mask": tool_mask,
        "sampling_per_token_logps": sampling_logps,
        "mm_token_type_ids": mm_token_type_ids,
        "num_images": [len(t.images) for t in trajectories],
    }
    if images:
        batch["pixel_values"] = torch.cat([img.pixel_values for img in images], dim=0)
        batch["image_grid_thw"] = torch.stack([img.grid_thw for img in images], dim=0)
    if device is not None:
        batch = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
    return batch
