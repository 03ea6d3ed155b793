"""Bad model output (issue 9, part 2): whatever a turn holds, the rollout takes a defined next step and every
reward is a finite number in its range.

A fake generate function returns given token ids (as the real one would: cut after the first stop token, or
at the per-turn limit), so the real path runs: decode -> parse_box -> crop_window -> crop_image on a real PIL
image -> the injected crop turn through the processor (SPEC §2) -> format, accuracy (every dataset of the
registry) and the GIoU metric (SPEC §3). The adversarial kinds are listed in ``ADVERSARIAL`` and fuzzed around
with hypothesis, with arbitrary text, arbitrary bytes decoded with errors="replace", and arbitrary token ids
(byte tokens that decode to invalid UTF-8, special and vision tokens, ids beyond the tokenizer that the model's
larger embedding can still sample).
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from ground_r1.boxes import MIN_CROP_SIZE, parse_box
from ground_r1.models.loading import load_processor
from ground_r1.rewards.accuracy import accuracy_score
from ground_r1.rewards.format import MAX_FORMAT_REWARD, format_score
from ground_r1.rewards.giou import giou_metrics
from ground_r1.rewards.registry import DEFAULT_REGISTRY
from ground_r1.rewards.trl_functions import accuracy_reward, format_reward
from ground_r1.rollout.answer import has_answer
from ground_r1.rollout.conversation import ConversationCodec
from ground_r1.rollout.generation import GeneratedTurn
from ground_r1.rollout.runner import Rollout, RolloutConfig, RolloutQuestion
from ground_r1.rollout.sampling import SamplingParams, TreePlan

MAX_NEW_TOKENS = 48
FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)

# The adversarial kinds of the issue, one or more texts each (tokenized, then closed with eos or cut).
ADVERSARIAL = {
    "empty turn": [""],
    "whitespace only": ["  \n\t "],
    "no box": ["<think> I see a cat </think>", "<think></think>"],
    "empty box tag": ["<think> t </think> <box></box>"],
    "many boxes": ["<think> t </think> " + "<box>[1,2,30,40]</box>" * 40, "[5,5,50,50] " * 60],
    "NaN/inf words": ["<box>[nan, 1, 2, 3]</box>", "<box>[inf,-inf,1,2]</box>", "[NaN,NaN,NaN,NaN]"],
    "huge coordinates": [
        "<box>[99999999999999999999999999,0,5,5]</box>",
        "<box>[1000000,1000000,2000000,3000000]</box>",
        "[" + ",".join(["9" * 400] * 4) + "]",
    ],
    "negative coordinates": ["<box>[-10,-10,-5,-5]</box>", "<box>[-50, 3, 40, 60]</box>", "[-1,2,3,4]"],
    "inverted / zero area": ["<box>[40,40,10,10]</box>", "<box>[7,7,7,7]</box>", "<box>[0,5,400,5]</box>"],
    "outside the image": ["<box>[5000,5000,6000,6000]</box>", "<box>[0,0,1e3,2]</box>"],
    "extreme aspect ratio": ["<box>[0,0,447,1]</box>"],
    "box and answer in one turn": ["<think> t </think> <box>[1,2,30,40]</box> <answer> red </answer>"],
    "answer cut by the token limit": ["<think> t </think> <answer> the answer is a very long"],
    "unclosed tags": ["<think> t <box>[1,2,30,40]", "<box>[1,2,3"],
    "vision token as text": ["<think> <|image_pad|> </think> <box>[1,1,40,40]</box>", "<|vision_start|>"],
    "template tokens as text": ["<|im_start|>user\nhi<|im_end|>", "<|im_end|>" * 3],
    "long digit runs (regex backtracking)": ["[" + ",".join(["1" * 60] * 4), "<box>[" + "1" * 300],
    "unicode": ["<think> 日本語 🙂 \u202e </think> <box>[１,２,３,４]</box>", "\x00\x01\x7f"],
}
ADVERSARIAL_TEXTS = [text for texts in ADVERSARIAL.values() for text in texts]

BOXY = st.text(alphabet=st.sampled_from(list("[]0123456789.,-+ \nnaif<>/boxthinkswer")), max_size=60)
TEXTS = st.one_of(
    st.sampled_from(ADVERSARIAL_TEXTS),
    st.text(max_size=80),
    st.binary(max_size=80).map(lambda raw: raw.decode("utf-8", errors="replace")),
    BOXY,
    st.builds(
        lambda a, b, c: a + "<box>" + b + "</box>" + c,
        st.text(max_size=10),
        BOXY,
        st.sampled_from(["", " <answer> x </answer>", "<answer>", " trailing"]),
    ),
    st.builds(lambda a, b: f"<think>{a}</think> <box>{b}</box>", st.text(max_size=10), BOXY),
)
# Original images the question can come with: ordinary, tiny (< 28 px), thin (aspect ratio 150), large.
SIZES = st.sampled_from([(448, 336), (10, 10), (150, 1), (1, 150), (2000, 1500), (29, 27)])


@pytest.fixture(scope="module")
def codec(tiny_model_dir):
    return ConversationCodec(load_processor(tiny_model_dir, min_pixels=3136, max_pixels=12544))


@pytest.fixture(scope="module")
def model_vocab_size(tiny_model_dir) -> int:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_model_dir)
    return int(getattr(config, "text_config", config).vocab_size)


def turn_strategy(codec: ConversationCodec, vocab: int):
    """A sampled turn: ('text', text, closed) tokenized, or ('ids', ids, closed) as given."""
    special = sorted(set(codec.vision_token_ids) | set(codec.tokenizer.all_special_ids))
    any_id = st.one_of(st.integers(0, vocab - 1), st.sampled_from(special), st.integers(0, 255))
    return st.one_of(
        st.tuples(st.just("text"), TEXTS, st.booleans()),
        st.tuples(st.just("ids"), st.lists(any_id, max_size=40), st.booleans()),
    )


class FakeGenerate:
    """Returns the scripted turns in order (one per row, round after round), as a model would have sampled
    them: cut after the first stop token (eos or pad, as HFGenerator stops), or at ``max_new_tokens`` with
    ``hit_token_limit``. A turn that is not ``closed`` has no stop token: it runs into the limit."""

    def __init__(self, codec: ConversationCodec, turns: list[tuple[str, object, bool]]):
        self.codec, self.turns, self.calls = codec, list(turns), 0

    def _ids(self, kind: str, payload: object) -> list[int]:
        if kind == "text":
            return list(self.codec.tokenizer(payload, add_special_tokens=False)["input_ids"])
        return list(payload)  # type: ignore[arg-type]

    def __call__(self, requests, sampling, max_new_tokens):
        self.calls += 1
        stops = {self.codec.eos_token_id, self.codec.pad_token_id}
        out = []
        for _ in requests:
            kind, payload, closed = self.turns.pop(0) if self.turns else ("text", "<answer> done </answer>", True)
            ids = self._ids(kind, payload) + ([self.codec.eos_token_id] if closed else [])
            end = next((i + 1 for i, t in enumerate(ids) if t in stops), None)
            if end is not None and end <= max_new_tokens:
                out.append(GeneratedTurn(ids=ids[:end], logps=[-1.0] * end, hit_token_limit=False))
            else:
                # No stop token within the limit: the generator runs to the limit (padded with a filler token).
                filler = self.codec.tokenizer("x", add_special_tokens=False)["input_ids"][0]
                cut = [t for t in ids if t not in stops][:max_new_tokens]
                cut += [filler] * (max_new_tokens - len(cut))
                out.append(GeneratedTurn(ids=cut, logps=[-1.0] * len(cut), hit_token_limit=True))
        return out


def run_rollout(codec, turns, size, max_turns=3, max_completion_length=None, crop_fallback="full_image", no_crop=False):
    image = Image.new("RGB", size, (30, 140, 200))
    image.paste((250, 250, 0), (0, 0, max(1, size[0] // 2), max(1, size[1] // 2)))  # so crops differ from the whole
    config = RolloutConfig(
        max_turns=max_turns, max_completion_length=max_completion_length, crop_fallback=crop_fallback, no_crop=no_crop
    )
    rollout = Rollout(codec, FakeGenerate(codec, turns), config)
    trajectories = rollout.run(
        [RolloutQuestion("What colour is the square?", image)],
        TreePlan(1, 1),
        SamplingParams(max_new_tokens=MAX_NEW_TOKENS),
    )
    return trajectories, image


FINISH_REASONS = {"answer", "max_turns", "budget", "no_box", "vision_token"}  # runner.Trajectory


def check_trajectory(codec, t, image) -> None:
    """Every turn has a defined next step (crop, fallback or stop) and the token bookkeeping is intact."""
    assert t.finish_reason in FINISH_REASONS
    assert 1 <= t.num_turns <= 3
    assert len(t.completion_ids) == len(t.completion_mask) == len(t.sampling_logps)
    assert set(t.completion_mask) <= {0, 1}
    assert all(math.isfinite(x) for x in t.sampling_logps)
    assert codec.image_token_id not in [i for i, m in zip(t.completion_ids, t.completion_mask) if m]
    width, height = image.size
    for k, turn in enumerate(t.turns):
        last = k == t.num_turns - 1
        assert isinstance(turn.text, str)
        if has_answer(turn.text) and not turn.had_vision_token:
            assert last and t.finish_reason == "answer" and turn.is_answer
        if last and t.finish_reason == "no_box":  # crop_fallback="end": no valid box is a stop, not a crash
            assert turn.crop_window is None and not turn.crop_is_fallback
        if not last:  # the trajectory went on: a crop (or the full-image fallback) was fed back
            assert turn.crop_window is not None
            x1, y1, x2, y2 = turn.crop_window
            assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
            assert x2 - x1 >= min(MIN_CROP_SIZE, width) and y2 - y1 >= min(MIN_CROP_SIZE, height)
            parsed = parse_box(turn.text)
            assert (turn.box is None) == (parsed is None)
            if turn.crop_is_fallback:
                assert turn.crop_window == (0, 0, width, height)
            else:
                assert parsed is not None  # a crop that is not the fallback comes from a parsed box
        if turn.box is not None:
            assert all(math.isfinite(v) and v >= 0 for v in turn.box)
            bx1, by1, bx2, by2 = turn.box_original
            assert 0 <= bx1 <= bx2 <= width and 0 <= by1 <= by2 <= height
    # Images: the original, then one crop per turn that went on (every turn but the last).
    assert len(t.images) == t.num_turns


SOLUTIONS = ("<answer>B</answer>", "a cat on a mat", "yes")


def check_rewards(t, gt_boxes, solution: str = "<answer>B</answer>") -> None:
    """Format in [0, 2]; accuracy in [0, 1] for every dataset of the registry (None only where there is no
    rule); the TRL wrappers agree; every GIoU metric finite, scores and rates in [0, 1]."""
    texts = t.turn_texts
    fmt = format_score(texts)
    assert math.isfinite(fmt) and 0.0 <= fmt <= MAX_FORMAT_REWARD
    for dataset in DEFAULT_REGISTRY.known_datasets():
        score = accuracy_score(t.final_text, solution, dataset)
        if DEFAULT_REGISTRY.has_rule(dataset):
            assert score is not None and math.isfinite(score) and 0.0 <= score <= 1.0, (dataset, score)
        else:
            assert score is None  # emotic: n/a, never a made-up number
    [fmt_trl] = format_reward(prompts=[""], completions=[""], turns=[texts])
    [acc_trl] = accuracy_reward(prompts=[""], completions=[""], turns=[texts], solution=[solution], dataset=["vsr"])
    assert fmt_trl == fmt and math.isfinite(acc_trl) and 0.0 <= acc_trl <= 1.0
    grounding = [turn.box_original for turn in t.turns if not turn.is_answer]
    metrics = giou_metrics([grounding], [gt_boxes])
    assert all(math.isfinite(v) for v in metrics.values())
    for key, value in metrics.items():
        if key.startswith("giou/round_") or key in ("giou/score", "giou/score_best", "giou/no_box_rate"):
            assert 0.0 <= value <= 1.0, (key, value)


@FUZZ
@given(data=st.data())
def test_any_model_output_gets_a_defined_next_step_and_finite_rewards(codec, model_vocab_size, data):
    turns = data.draw(st.lists(turn_strategy(codec, model_vocab_size), min_size=3, max_size=3))
    size = data.draw(SIZES)
    budget = data.draw(st.sampled_from([None, None, 400]))
    solution = data.draw(st.one_of(st.sampled_from(SOLUTIONS), st.text(min_size=1, max_size=20)))
    fallback = data.draw(st.sampled_from(["full_image", "full_image", "end"]))
    (t,), image = run_rollout(
        codec, turns, size, max_completion_length=budget, crop_fallback=fallback, no_crop=data.draw(st.booleans())
    )
    check_trajectory(codec, t, image)
    check_rewards(t, [[0, 0, max(1, size[0] // 2), max(1, size[1] // 2)]], solution)
    if budget is not None:
        assert len(t.completion_ids) <= budget


@pytest.mark.parametrize("kind", sorted(ADVERSARIAL))
def test_each_adversarial_kind_in_every_round(codec, kind):
    # Each text of the kind as every turn, closed and cut by the token limit, on an ordinary and a tiny image.
    for text in ADVERSARIAL[kind]:
        for closed in (True, False):
            for size in ((448, 336), (10, 10)):
                (t,), image = run_rollout(codec, [("text", text, closed)] * 3, size)
                check_trajectory(codec, t, image)
                for solution in SOLUTIONS:
                    check_rewards(t, [[0, 0, 5, 5]], solution)


def test_bytes_that_are_not_utf8_decode_to_replacement_characters(codec):
    # 0xE6 0x97 (2 of the 3 bytes of "日") then 0xFF: byte tokens that decode to invalid UTF-8.
    ids = codec.tokenizer("日", add_special_tokens=False)["input_ids"]
    assert len(ids) == 3  # byte-level BPE: one token per byte here
    (t,), image = run_rollout(codec, [("ids", ids[:2] + [ids[0]], True)] * 3, (448, 336))
    assert "\ufffd" in t.turns[0].text
    assert t.finish_reason == "max_turns" and all(turn.crop_is_fallback for turn in t.turns[:-1])
    check_trajectory(codec, t, image)


def test_ids_beyond_the_tokenizer_decode_to_nothing_and_fall_back(codec, model_vocab_size):
    # The model's embedding (vocab_size) is larger than the tokenizer: such ids can be sampled; they decode
    # to "" and the turn falls back to the full image.
    beyond = list(range(len(codec.tokenizer), min(model_vocab_size, len(codec.tokenizer) + 5)))
    assert beyond, "the tiny model should have padded vocabulary rows"
    (t,), image = run_rollout(codec, [("ids", beyond, True)] * 3, (448, 336))
    assert t.turns[0].text == "" and t.turns[0].crop_window == (0, 0, 448, 336) and t.turns[0].crop_is_fallback
    check_trajectory(codec, t, image)


def test_a_box_and_an_answer_in_one_turn_ends_the_episode_malformed(codec):
    text = "<think> t </think> <box>[1,2,30,40]</box> <answer> red </answer>"
    (t,), _ = run_rollout(codec, [("text", text, True)], (448, 336))
    assert (t.finish_reason, t.num_turns, t.turns[0].crop_window) == ("answer", 1, None)
    assert format_score(t.turn_texts) == 0.0  # SPEC §3: ends the episode, well formed as neither kind
    # The answer still counts for accuracy: vsr's exact match on "red" = 1.0.
    assert accuracy_score(t.final_text, "red", "vsr") == 1.0


def test_an_answer_cut_by_the_token_limit_ends_with_an_injected_eos(codec):
    text = "<think> t </think> <answer> " + "very " * 100
    (t,), _ = run_rollout(codec, [("text", text, True)], (448, 336))
    turn = t.turns[0]
    assert (t.finish_reason, turn.hit_token_limit, len(turn.ids)) == ("answer", True, MAX_NEW_TOKENS)
    # 48 sampled ids (mask 1), then the injected <|im_end|> (mask 0).
    assert t.completion_ids[-1] == codec.eos_token_id and t.completion_mask == [1] * MAX_NEW_TOKENS + [0]
    assert format_score(t.turn_texts) == 0.0  # no </answer>: malformed
    assert accuracy_score(t.final_text, "very", "vsr") == 0.6  # extraction: the text after <answer>, contains gt


def test_many_boxes_the_first_valid_one_wins(codec):
    text = "<think> t </think> <box>[nan,0,1,1] [-5, 300, 40, 60]</box> [1,2,30,40] [9,9,99,99]"
    (t,), _ = run_rollout(codec, [("text", text, True)] * 3, (448, 336))
    # Inside the tag: "[nan,...]" does not match; "[-5, 300, 40, 60]" does: -5 clamps to 0, rows re-ordered.
    assert t.turns[0].box == (0.0, 60.0, 40.0, 300.0) and t.turns[0].box_source == "box_tag"


def test_tree_rollout_with_different_bad_turns_per_branch(codec):
    # G1 = 2 first-round turns (an empty one; two bytes that are not UTF-8, cut by the limit), each shared by
    # G2 = 2 trajectories; the 4 trajectories then get different bad turns in each later round.
    later = [
        ("text", "<box>[nan,1,2,3]</box>", True),
        ("text", "<answer> x", False),
        ("text", "<box>[5,5,60,60]</box>", True),
        ("text", "[" + "9" * 50, False),
    ]
    turns = [("text", "", True), ("ids", [0xFF, 0xFE], False)] + later * 2
    image = Image.new("RGB", (448, 336), (30, 140, 200))
    rollout = Rollout(codec, FakeGenerate(codec, turns), RolloutConfig(max_turns=3))
    trajectories = rollout.run([RolloutQuestion("Q?", image)], TreePlan(2, 2), SamplingParams(max_new_tokens=16))
    assert [t.branch for t in trajectories] == [0, 0, 1, 1]
    # Round 2 (4 rows, turns in order): t0 NaN box -> fallback, t1 "<answer> x" -> ends, t2 box -> crop,
    # t3 digit run -> fallback. Round 3 (t0, t2, t3 get the next three): NaN box, "<answer> x", box; the
    # 3rd turn is the last (max_turns) unless it answers.
    assert [t.finish_reason for t in trajectories] == ["max_turns", "answer", "answer", "max_turns"]
    assert [t.num_turns for t in trajectories] == [3, 2, 3, 3]
    for t in trajectories:
        check_trajectory(codec, t, image)
        check_rewards(t, [[0, 0, 5, 5]])
