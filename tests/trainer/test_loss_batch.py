"""The loss batch (trainer/loss_batch.py) and the scored LM head (trainer/completion_head.py): bucketed and packed
layouts give TRL's padded log-probs (1e-5, CPU float32), and TRL's loss and gradients, for every loss type whose
normalisation differs (grpo, bnpo, dr_grpo, dapo); the LM head sees only the loss-mask positions.

Negative controls show the comparisons can fail: the same layouts without per-trajectory M-RoPE positions, or
packed without the text positions that restart per trajectory, give other log-probs."""

from __future__ import annotations

import pytest
import torch

from ground_r1.demo.scripted import ScriptedGenerator, mixed_rounds
from ground_r1.trainer.completion_head import ScoredHead
from ground_r1.trainer.loss_batch import build_loss_batch, plan_buckets, plan_packs, resolve_layout, score_loss_batch
from conftest import group_inputs, make_records

TOL = dict(rtol=1e-5, atol=1e-5)


# -- planning --------------------------------------------------------------------------------------------------------
def test_buckets_are_the_fewest_runs_of_similar_length():
    lengths = [300, 930, 310, 620, 935, 600, 305]
    # Sorted: 935, 930 | 620, 600 | 310, 305, 300. {935, 930}: fill 1865/1870; {620, 600}: 1220/1240;
    # {310, 305, 300}: 915/930, each >= 0.9. Joining 620 to the long ones: 2485/2805 = 0.886 < 0.9, so 3 buckets.
    assert plan_buckets(lengths, 0.9) == [[1, 4], [3, 5], [0, 2, 6]]
    # At 0.8 the middle pair may join the long one (2485/2805 = 0.886): 2 buckets, the DP takes the fewest.
    assert plan_buckets(lengths, 0.8) == [[1, 3, 4, 5], [0, 2, 6]]
    # min_fill 1.0: only equal lengths share a bucket; max_rows caps a bucket's rows.
    assert plan_buckets([5, 5, 5, 3], 1.0) == [[0, 1, 2], [3]]
    assert plan_buckets([5, 5, 5, 3], 1.0, max_rows=2) == [[0, 1], [2], [3]]
    assert plan_buckets([], 0.9) == []
    with pytest.raises(ValueError, match="min_fill must be in"):
        plan_buckets([1], 0.0)


def test_packs_are_chunks_of_batch_size_trajectories():
    assert plan_packs(5) == [[0, 1, 2, 3, 4]]
    assert plan_packs(5, max_rows=2) == [[0, 1], [2, 3], [4]]


def test_auto_layout_packs_only_with_varlen_attention():
    assert resolve_layout("auto", "sdpa") == "bucketed"
    assert resolve_layout("auto", "flash_attention_2") == "packed"
    assert resolve_layout("padded", "flash_attention_2") == "padded"
    with pytest.raises(ValueError, match="loss_batch_layout must be one of"):
        resolve_layout("ragged", "sdpa")


def _handmade():
    # Two rows, prompt width 3 (left-padded), completion width 4 (right-padded):
    #   row 0: prompt [11, 12], completion [21, 22, 23]   -> 5 tokens
    #   row 1: prompt [13, 14, 15], completion [24]       -> 4 tokens
    ids = torch.tensor([[0, 11, 12, 21, 22, 23, 0], [13, 14, 15, 24, 0, 0, 0]])
    att = torch.tensor([[0, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0, 0]])
    return ids, att


def test_bucketed_layout_drops_padding_and_maps_scored_tokens_back():
    ids, att = _handmade()
    score = torch.tensor([[1, 0, 1, 0], [1, 0, 0, 0]])  # score completion tokens 21, 23 and 24
    batch = build_loss_batch(ids, att, 4, layout="bucketed", score_mask=score, min_fill=0.5, pad_token_id=9)
    assert len(batch.forwards) == 1  # 9 tokens / (2 x 5) = 0.9 >= 0.5
    fwd = batch.forwards[0]
    assert fwd.input_ids.tolist() == [[11, 12, 21, 22, 23], [13, 14, 15, 24, 9]]
    assert fwd.segment_ids.tolist() == [[0, 0, 0, 0, 0], [1, 1, 1, 1, -1]]
    assert fwd.attention_mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]
    assert fwd.position_ids[0].tolist() == [[0, 1, 2, 3, 4], [0, 1, 2, 3, 0]]  # 1-D positions, no M-RoPE given
    assert fwd.score_positions.tolist() == [[False, False, True, False, True], [False, False, False, True, False]]
    assert (fwd.target_rows.tolist(), fwd.target_cols.tolist()) == ([0, 0, 1], [0, 2, 0])
    assert (batch.real_positions, batch.positions, batch.padded_positions, batch.scored) == (9, 10, 14, 3)
    assert batch.fill == 0.9
    # At min_fill 1.0 the rows go to separate forwards: no padding at all.
    assert build_loss_batch(ids, att, 4, layout="bucketed", min_fill=1.0).fill == 1.0


def test_packed_layout_restarts_text_positions_per_trajectory():
    ids, att = _handmade()
    batch = build_loss_batch(ids, att, 4, layout="packed")
    (fwd,) = batch.forwards
    assert fwd.input_ids.tolist() == [[11, 12, 21, 22, 23, 13, 14, 15, 24]]
    assert fwd.attention_mask is None
    assert fwd.position_ids.shape == (4, 1, 9)
    assert fwd.position_ids[0, 0].tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3]  # text positions: the boundaries
    assert fwd.segment_ids.tolist() == [[0] * 5 + [1] * 4]
    assert (fwd.target_rows.tolist(), fwd.target_cols.tolist()) == ([0, 0, 0, 1], [0, 1, 2, 0])
    assert batch.fill == 1.0


def test_layout_errors_name_the_row():
    ids, att = _handmade()
    empty = att.clone()
    empty[1] = 0
    with pytest.raises(ValueError, match="row 1 of the loss batch has no tokens"):
        build_loss_batch(ids, empty, 4, layout="bucketed")
    no_prompt = torch.tensor([[0, 0, 0, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0, 0]])
    with pytest.raises(ValueError, match="row 0: its first token is a scored completion token"):
        build_loss_batch(ids, no_prompt, 4, layout="packed")
    with pytest.raises(ValueError, match="lays out 'bucketed' or 'packed'"):
        build_loss_batch(ids, att, 4, layout="padded")


# -- on the tiny model -----------------------------------------------------------------------------------------------
def scripted_step(trainer, tmp_path, n_questions=2):
    """One rollout whose trajectories finish in rounds 1, 2 and 3 (`mixed_rounds`), scored into TRL's inputs."""
    trainer._make_generator = lambda model: ScriptedGenerator(trainer.codec, mixed_rounds)
    trainer.model.train()
    inputs = trainer._generate_and_score_completions(group_inputs(trainer, make_records(tmp_path, n_questions)))
    assert {t.num_turns for t in trainer.last_trajectories} == {1, 2, 3}
    return inputs


def logps_of(trainer, inputs, layout, model=None, score_mask=None):
    """The log-prob pass of `layout`; entropies from the policy only (TRL's reference head computes none)."""
    model = model or trainer.model
    trainer.loss_layout = layout
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    att = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    with torch.no_grad(), trainer._scoring(score_mask):
        logps, ent, _ = trainer._get_per_token_logps_and_entropies(
            model,
            ids,
            att,
            inputs["completion_ids"].size(1),
            compute_entropy=model is trainer.model,
            pixel_values=inputs["pixel_values"],
            image_grid_thw=inputs["image_grid_thw"],
            num_images=inputs["num_images"],
            mm_token_type_ids=inputs["mm_token_type_ids"],
        )
    return logps, ent


@pytest.fixture
def stepped(make_trainer, tmp_path):
    trainer = make_trainer(n_questions=2, per_device_train_batch_size=8, num_generations=4, beta=0.04)
    assert trainer.loss_layout == "bucketed"  # auto on CPU (sdpa)
    inputs = scripted_step(trainer, tmp_path)
    return trainer, inputs


def test_bucketed_and_packed_logprobs_equal_the_padded_ones(stepped):
    trainer, inputs = stepped
    loss_mask = (inputs["completion_mask"] * inputs["tool_mask"]).bool()
    padded, padded_ent = logps_of(trainer, inputs, "padded")
    assert trainer.last_loss_batch is None or trainer.last_loss_batch.layout != "padded"
    for layout in ("bucketed", "packed"):
        for model in (trainer.model, trainer.ref_model):  # the loss / old pass and the reference pass
            ours, ours_ent = logps_of(trainer, inputs, layout, model=model, score_mask=loss_mask.long())
            theirs, theirs_ent = (
                (padded, padded_ent) if model is trainer.model else logps_of(trainer, inputs, "padded", model=model)
            )
            torch.testing.assert_close(ours[loss_mask], theirs[loss_mask], **TOL)
            if model is trainer.model:
                torch.testing.assert_close(ours_ent[loss_mask], theirs_ent[loss_mask], **TOL)
            assert ours[~loss_mask].abs().max().item() == 0.0  # injected turns and padding are not scored
        # Without a score mask every completion token is scored, as TRL does (crop turns included).
        full, _ = logps_of(trainer, inputs, layout)
        att = inputs["completion_mask"].bool()
        torch.testing.assert_close(full[att], padded[att], **TOL)
    # The step's loss batch was bucketed: trajectories that finished in round 1 no longer pad to round 3's width.
    batch = trainer.last_loss_batch
    assert batch.layout == "packed" and batch.fill == 1.0
    logps_of(trainer, inputs, "bucketed")
    bucketed = trainer.last_loss_batch
    assert bucketed.fill >= 0.9 > bucketed.real_positions / bucketed.padded_positions
    assert len(bucketed.forwards) >= 2


def test_negative_controls_positions_matter(stepped):
    trainer, inputs = stepped
    loss_mask = (inputs["completion_mask"] * inputs["tool_mask"]).bool()
    padded, _ = logps_of(trainer, inputs, "padded")
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    att = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    common = dict(
        score_mask=loss_mask,
        mm_token_type_ids=inputs["mm_token_type_ids"],
        pixel_values=inputs["pixel_values"],
        image_grid_thw=inputs["image_grid_thw"],
        num_images=inputs["num_images"],
        pad_token_id=trainer.codec.pad_token_id,
    )
    head = ScoredHead(temperature=trainer.temperature)

    def gap(batch):
        with torch.no_grad():
            logps, _ = score_loss_batch(trainer.model, batch, head)
        return (logps - padded)[loss_mask].abs().max().item()

    # 1. No M-RoPE (1-D positions over the real tokens): image tokens lose their 2-D positions (on the random
    # tiny model the effect is small, ~6e-4, still 60x the tolerance of the equivalence tests).
    assert gap(build_loss_batch(ids, att, inputs["completion_ids"].size(1), layout="bucketed", **common)) > 1e-4
    # 2. Packed with one running text position: the trajectories of the row attend to each other.
    from ground_r1.trainer.grpo_trainer import _rope_positions

    positions = _rope_positions(trainer.model, ids, att, inputs["mm_token_type_ids"], inputs["image_grid_thw"])
    packed = build_loss_batch(
        ids, att, inputs["completion_ids"].size(1), layout="packed", position_ids=positions, **common
    )
    assert gap(packed) < 1e-5
    fwd = packed.forwards[0]
    running = fwd.position_ids.clone()
    running[0, 0] = torch.arange(running.shape[-1])
    leaky = type(packed)(
        packed.layout,
        [type(fwd)(**{**fwd.__dict__, "position_ids": running})],
        packed.rows,
        packed.completion_width,
        packed.padded_positions,
    )
    assert gap(leaky) > 1e-3


def loss_and_grads(trainer, inputs, layout):
    trainer.loss_layout = layout
    trainer.model.zero_grad(set_to_none=True)
    loss = trainer.compute_loss(trainer.model, inputs)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    return loss.detach(), grads


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo"])
def test_loss_and_gradients_equal_with_and_without_the_new_batching(make_trainer, tmp_path, loss_type):
    trainer = make_trainer(
        n_questions=2, per_device_train_batch_size=8, num_generations=4, beta=0.04, loss_type=loss_type
    )
    trainer.loss_layout = "padded"  # today's inputs: reference log-probs from TRL's padded pass
    inputs = scripted_step(trainer, tmp_path)
    # The scripted trajectories all earn the same reward; give the rows distinct advantages so the policy term
    # (and each loss type's normalisation of it) is not zero. The reference model differs from the policy (its
    # log-probs are perturbed) so the KL term has a gradient too.
    inputs["advantages"] = torch.linspace(-1.0, 1.0, inputs["prompt_ids"].size(0))
    inputs["ref_per_token_logps"] = inputs["ref_per_token_logps"] - 0.1 * inputs["completion_mask"]
    trainer.current_gradient_accumulation_steps = 1  # set by train(); compute_loss is called directly here
    loss_padded, grads_padded = loss_and_grads(trainer, inputs, "padded")
    assert loss_padded.abs().item() > 1e-4 and len(grads_padded) > 10
    for layout in ("bucketed", "packed"):
        loss, grads = loss_and_grads(trainer, inputs, layout)
        torch.testing.assert_close(loss, loss_padded, **TOL)
        assert grads.keys() == grads_padded.keys()
        for name in grads:
            torch.testing.assert_close(grads[name], grads_padded[name], rtol=1e-4, atol=1e-6, msg=f"{layout}: {name}")
    assert trainer._metrics["train"]["loss_batch/fill"][-1] == 1.0  # the packed pass


def test_the_lm_head_sees_only_loss_mask_positions(stepped, monkeypatch):
    trainer, inputs = stepped
    from trl.kernels import chunked_logprob

    rows_projected = []
    original = chunked_logprob.ChunkedLogProbFunction.apply

    def counting(hidden, *args):
        rows_projected.append(hidden.shape[0])
        return original(hidden, *args)

    monkeypatch.setattr(chunked_logprob.ChunkedLogProbFunction, "apply", staticmethod(counting))
    trainer.current_gradient_accumulation_steps = 1
    for layout in ("padded", "bucketed"):
        rows_projected.clear()
        trainer.loss_layout = layout
        trainer.compute_loss(trainer.model, inputs)
        if layout == "padded":  # TRL on CPU: every position but the last of every row of [B, P + C]
            b, width = inputs["prompt_ids"].size(0), inputs["prompt_ids"].size(1) + inputs["completion_ids"].size(1)
            assert sum(rows_projected) == b * (width - 1)
        else:  # ours: exactly the sampled tokens (completion_mask x tool_mask)
            assert sum(rows_projected) == int((inputs["completion_mask"] * inputs["tool_mask"]).sum())


def test_groups_split_so_every_rank_runs_as_many_forwards():
    # Rank A's rows fit in 1 bucket, rank B's need 3: A splits its largest bucket until it also has 3.
    assert plan_buckets([10, 10, 10, 10], 0.9) == [[0, 1, 2, 3]]
    assert plan_buckets([10, 10, 10, 10], 0.9, min_buckets=3) == [[0], [1], [2, 3]]
    assert plan_packs(4, min_packs=2) == [[0, 1], [2, 3]]
    assert plan_buckets([10], 0.9, min_buckets=3) == [[0]]  # a single row cannot be split further
    ids, att = _handmade()
    assert len(build_loss_batch(ids, att, 4, layout="packed", min_forwards=2).forwards) == 2
