"""What reaches TRL's loss: the mask (a), the crops (b), the tree (c), and sampling left explicit (f)."""

from __future__ import annotations

import torch

from ground_r1.models.loading import vision_tower
from ground_r1.demo.scripted import ScriptedCall, ScriptedGenerator
from ground_r1.rollout.generation import HFGenerator, GenerationRequest
from conftest import group_inputs, make_records


def grounding_then_answer(call: ScriptedCall) -> str:
    """Round 1: a box that depends on the call and row (distinct first turns); round 2: rows with even index
    answer, odd ones ground again; round 3: everyone answers."""
    if call.num_images == 1:
        x = 10 + 7 * call.row
        return f"<think> look {call.row} </think> <box>[{x},10,{x + 40},50]</box>"
    if call.num_images == 2 and call.row % 2 == 1:
        return "<think> closer </think> <box>[20,20,70,60]</box>"
    return "<think> I see it </think> <answer> red </answer>"


def run_step(trainer, tmp_path, policy=grounding_then_answer):
    captured = {}
    scripted = {}

    def make_generator(model):
        scripted["gen"] = ScriptedGenerator(trainer.codec, policy)
        return scripted["gen"]

    trainer._make_generator = make_generator
    records = make_records(tmp_path, trainer.args.per_device_train_batch_size // trainer.num_generations)
    trainer.model.train()
    inputs = trainer._generate_and_score_completions(group_inputs(trainer, records))
    captured.update(inputs)
    return captured, trainer.last_trajectories, scripted["gen"]


def test_loss_mask_is_one_exactly_on_sampled_tokens(make_trainer, tmp_path):
    trainer = make_trainer()
    inputs, trajectories, _ = run_step(trainer, tmp_path)
    tok = trainer.processing_class.tokenizer
    mask = inputs["completion_mask"] * inputs["tool_mask"]  # what _compute_loss trains on
    eos = tok.eos_token
    for i, t in enumerate(trajectories):
        # The expected mask, built independently from the scripted turns: each sampled turn (its text ids plus
        # the closing eos) is 1, everything the rollout injected (user turn, Picture k, image pads, template,
        # assistant header, and the eos appended after a turn cut by the per-turn limit) is 0, padding is 0.
        expected_text = "".join(turn.text + ("" if turn.hit_token_limit else eos) for turn in t.turns)
        trained = inputs["completion_ids"][i][mask[i].bool()].tolist()
        assert tok.decode(trained) == expected_text
        assert int(mask[i].sum()) == sum(len(turn.ids) for turn in t.turns)
        # and nothing trained lies in the prompt: prompt tokens are not part of the completion tensor at all
        untrained = inputs["completion_ids"][i][(inputs["completion_mask"][i] == 1) & (mask[i] == 0)].tolist()
        untrained_text = tok.decode(untrained)
        assert untrained_text.count("<|im_start|>user") == t.num_turns - 1
        assert "<|image_pad|>" in untrained_text or t.num_turns == 1
    # Scripted texts are known, so trajectories are checked literally: trajectory 1 shares round 1 with
    # trajectory 0 (branch 0) and, as row 1 of round 2, grounds again before answering.
    assert trajectories[1].turn_texts == [
        "<think> look 0 </think> <box>[10,10,50,50]</box>",
        "<think> closer </think> <box>[20,20,70,60]</box>",
        "<think> I see it </think> <answer> red </answer>",
    ]
    assert trajectories[0].turn_texts == [
        "<think> look 0 </think> <box>[10,10,50,50]</box>",
        "<think> I see it </think> <answer> red </answer>",
    ]


def test_turn_cut_by_the_token_limit_gets_an_injected_eos(make_trainer, tmp_path):
    trainer = make_trainer(max_new_tokens_per_turn=8)
    inputs, trajectories, _ = run_step(trainer, tmp_path)
    t = trajectories[0]
    first = t.turns[0]
    assert first.hit_token_limit and len(first.ids) == 8
    eos = trainer.codec.eos_token_id
    # The ninth completion token is the injected eos, and it is not trained on.
    assert t.completion_ids[8] == eos and t.completion_mask[8] == 0
    assert int(inputs["tool_mask"][0, 8]) == 0
    # The cut turn held no complete box: the full image was fed back (release default).
    assert first.box is None and first.crop_is_fallback


def test_crops_reach_the_loss_forward(make_trainer, tmp_path):
    trainer = make_trainer(beta=0.04)
    inputs, trajectories, _ = run_step(trainer, tmp_path)
    grids = inputs["image_grid_thw"]
    # Every image of every trajectory (originals and crops) is in the batch, in order.
    assert inputs["num_images"] == [len(t.images) for t in trajectories]
    assert grids.shape[0] == sum(len(t.images) for t in trajectories) > len(trajectories)
    trainer.current_gradient_accumulation_steps = 1  # set by train(); compute_loss is called directly here
    rows_seen = []
    hook = vision_tower(trainer.model).register_forward_hook(
        lambda m, args, kw_out=None: rows_seen.append(args[0].shape[0])
    )
    try:
        loss = trainer.compute_loss(trainer.model, inputs)
    finally:
        hook.remove()
    # The loss forward sees pixel rows = sum over images of t*h*w.
    assert sum(rows_seen) == int(grids.prod(dim=1).sum()) == inputs["pixel_values"].shape[0]
    # Changing one crop's pixels changes the loss (the KL term compares with reference log-probs computed on the
    # original pixels): crop = second image of trajectory 0.
    rows = grids.prod(dim=1).tolist()
    start, stop = rows[0], rows[0] + rows[1]
    changed = dict(inputs)
    changed["pixel_values"] = inputs["pixel_values"].clone()
    changed["pixel_values"][start:stop] = torch.randn_like(changed["pixel_values"][start:stop]) * 3
    loss_changed = trainer.compute_loss(trainer.model, changed)
    # All scripted trajectories earn the same reward (advantages 0) and the reference equals the policy, so the
    # loss is exactly beta * KL = 0; it becomes positive only if the crop's pixels change some log-prob.
    assert loss.item() == 0.0 and loss_changed.item() > 0.0

    # Causality: completion tokens before the crop's image are unaffected, tokens after it change.
    def logps(batch):
        ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
        att = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
        with torch.no_grad():
            out, _, _ = trainer._get_per_token_logps_and_entropies(
                trainer.model,
                ids,
                att,
                batch["completion_ids"].size(1),
                pixel_values=batch["pixel_values"],
                image_grid_thw=batch["image_grid_thw"],
                num_images=batch["num_images"],
                mm_token_type_ids=batch["mm_token_type_ids"],
            )
        return out[0]

    diff = (logps(inputs) - logps(changed)).abs()
    pad_id = trainer.codec.image_token_id
    first_crop_token = int((inputs["completion_ids"][0] == pad_id).nonzero()[0])
    assert diff[:first_crop_token].max().item() == 0.0
    assert diff[first_crop_token:].max().item() > 1e-6


def test_tree_shares_each_first_turn_among_g2_trajectories(make_trainer, tmp_path):
    trainer = make_trainer(per_device_train_batch_size=8, num_generations=4, num_first_round_samples=2)
    _, trajectories, gen = run_step(trainer, tmp_path)
    # 2 questions x N=4; round 1 generated G1=2 rows per question, not N.
    assert gen.rows_per_call[0] == 2 * 2
    for q in range(2):
        group = trajectories[q * 4 : (q + 1) * 4]
        first = [tuple(t.turns[0].ids) for t in group]
        assert first[0] == first[1] and first[2] == first[3]  # G2 = 2 trajectories share each first turn
        assert first[0] != first[2]  # G1 = 2 distinct first turns
        assert [t.branch for t in group] == [0, 0, 1, 1]


def test_g1_equal_n_is_flat_grpo(make_trainer, tmp_path):
    trainer = make_trainer(num_first_round_samples=4)
    _, trajectories, gen = run_step(trainer, tmp_path)
    assert gen.rows_per_call[0] == 4  # N rows in round 1: no sharing
    assert len({tuple(t.turns[0].ids) for t in trajectories}) == 4
    assert [t.branch for t in trajectories] == [0, 1, 2, 3]


def test_only_unfinished_trajectories_generate(make_trainer, tmp_path):
    trainer = make_trainer()
    _, trajectories, gen = run_step(trainer, tmp_path)
    # Round 2: all 4 trajectories (all grounded in round 1); round 3: only the odd rows of round 2 (2 of 4).
    assert gen.rows_per_call == [2, 4, 2]
    assert sorted(t.num_turns for t in trajectories) == [2, 2, 3, 3]


def test_training_sampling_ignores_the_checkpoint_generation_config(make_trainer, tmp_path):
    trainer = make_trainer()
    model = trainer.model
    # The tiny checkpoint's generation_config copies the real one: temperature 0.1, top_k 1 (greedy in effect).
    assert (model.generation_config.top_k, model.generation_config.temperature) == (1, 0.1)
    codec = trainer.codec
    from PIL import Image

    prompt = codec.encode_prompt("What colour?", Image.new("RGB", (200, 150), (9, 90, 200)))
    requests = [GenerationRequest(prompt.ids, prompt.images) for _ in range(8)]
    torch.manual_seed(0)
    sampled = HFGenerator(model, codec)(requests, trainer.train_sampling, 12)
    assert len({tuple(s.ids) for s in sampled}) > 1  # temperature 1 / top_k 50: not greedy
    # Negative control: letting generate fill unset fields from the checkpoint makes every row identical.
    from ground_r1.rollout.generation import collate_requests

    batch = collate_requests(requests, codec.pad_token_id, codec.image_token_id)
    torch.manual_seed(0)
    inherited = model.generate(**batch, max_new_tokens=12)
    assert len({tuple(r) for r in inherited.tolist()}) == 1
    assert model.generation_config.top_k == 1  # restored after our calls
