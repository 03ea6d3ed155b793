"""(e) The log-probs of sampling (from generate's own per-step logits, in the real left-padded batch of each round)
equal the log-probs the loss path computes for the same tokens, for multi-round trajectories, to 1e-4 (fp32).

Negative controls inside the test: dropping the attention mask, or decoding and re-tokenizing the turns (the
release's two defects, SPEC §10), break the agreement; so the comparison is able to fail."""

from __future__ import annotations

import torch

from conftest import group_inputs, make_records


def loss_path_logps(trainer, prompt_ids, prompt_mask, completion_ids, completion_mask, batch):
    ids = torch.cat([prompt_ids, completion_ids], dim=1)
    att = torch.cat([prompt_mask, completion_mask], dim=1)
    mm = (ids == trainer.codec.image_token_id).long() * att
    with torch.no_grad():
        logps, _, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model,
            ids,
            att,
            completion_ids.size(1),
            pixel_values=batch["pixel_values"],
            image_grid_thw=batch["image_grid_thw"],
            num_images=batch["num_images"],
            mm_token_type_ids=mm,
        )
    return logps


def test_sampling_logprobs_match_the_loss_path(make_trainer, tmp_path):
    trainer = make_trainer(
        per_device_train_batch_size=8,
        num_generations=4,
        max_turns=3,
        max_new_tokens_per_turn=24,
        record_sampling_logprobs=True,
        temperature=1.0,
    )
    torch.manual_seed(3)
    trainer.model.train()
    batch = trainer._generate_and_score_completions(group_inputs(trainer, make_records(tmp_path, 2)))
    trajectories = trainer.last_trajectories
    assert max(t.num_turns for t in trajectories) >= 2  # multi-round: the random model rarely answers
    sampled = batch["completion_mask"] * batch["tool_mask"]
    assert len({int(n) for n in batch["prompt_mask"].sum(1)}) > 1  # prompts of different lengths: real padding

    ours = loss_path_logps(
        trainer, batch["prompt_ids"], batch["prompt_mask"], batch["completion_ids"], batch["completion_mask"], batch
    )
    gap = ((ours - batch["sampling_per_token_logps"]).abs() * sampled).max().item()
    print(f"logprob gap {gap:.2e}")
    assert gap < 1e-4

    # Negative control 1: the attention mask dropped (the release's log-prob pass) changes the log-probs of the
    # rows that have padding.
    ones_p, ones_c = torch.ones_like(batch["prompt_mask"]), torch.ones_like(batch["completion_mask"])
    no_mask = loss_path_logps(trainer, batch["prompt_ids"], ones_p, batch["completion_ids"], ones_c, batch)
    gap_no_mask = ((no_mask - batch["sampling_per_token_logps"]).abs() * sampled).max().item()
    print(f"gap without attention mask {gap_no_mask:.2e}")
    assert gap_no_mask > 1e-3

    # Negative control 2: decoding and re-tokenizing the sampled turns (the release's off-policy path) scores
    # other tokens: the summed log-prob of each trajectory's turns no longer matches sampling.
    tok = trainer.processing_class.tokenizer
    rows = []
    for i in range(len(trajectories)):
        ids = batch["completion_ids"][i][batch["completion_mask"][i].bool()].tolist()
        mask = batch["tool_mask"][i][batch["completion_mask"][i].bool()].tolist()
        new_ids, new_mask, run = [], [], []
        for token, m in zip(ids + [None], mask + [0]):  # runs of sampled tokens = assistant turns
            if m == 1:
                run.append(token)
                continue
            if run:
                retok = tok(tok.decode(run), add_special_tokens=False)["input_ids"]
                new_ids += retok
                new_mask += [1] * len(retok)
                run = []
            if token is not None:
                new_ids.append(token)
                new_mask.append(0)
        rows.append((new_ids, new_mask))
    width = max(len(r[0]) for r in rows)
    c_ids = torch.full((len(rows), width), trainer.codec.pad_token_id)
    c_mask, c_tool = torch.zeros_like(c_ids), torch.zeros_like(c_ids)
    for i, (r_ids, r_mask) in enumerate(rows):
        c_ids[i, : len(r_ids)] = torch.tensor(r_ids)
        c_mask[i, : len(r_ids)] = 1
        c_tool[i, : len(r_ids)] = torch.tensor(r_mask)
    retok_logps = loss_path_logps(trainer, batch["prompt_ids"], batch["prompt_mask"], c_ids, c_mask, batch)
    retok_sums = (retok_logps * c_tool).sum(1)
    sampled_sums = (batch["sampling_per_token_logps"] * sampled).sum(1)
    assert (retok_sums - sampled_sums).abs().max().item() > 1e-3
