"""Format reward (SPEC §3): 2 x fraction of well-formed turns, fullmatch with DOTALL, tags exactly once."""

from __future__ import annotations

import pytest

from ground_r1.rewards.format import final_turn_flags, format_score, turn_is_well_formed

GROUND = "<think>The price tag is small.</think>\n<box>[10,20,110,220]</box>"
ANSWER = "<think>The tag reads 3 dollars.</think> <answer>3 dollars</answer>"


# ------------------------------------------------------------------------------------ grounding turns


@pytest.mark.parametrize(
    "box",
    [
        "[10,20,110,220]",
        "[10.5,20,110,220.25]",  # decimals: the release regex accepts \d+\.?\d*
        "[ 10, 20 ,110 , 220 ]",  # spaces INSIDE the list are allowed by the release regex
        "[0,0,0,0]",  # degenerate but well formed: format is syntax only
    ],
)
def test_well_formed_grounding_turn(box):
    assert turn_is_well_formed(f"<think>r</think><box>{box}</box>", is_final=False)


@pytest.mark.parametrize(
    "text",
    [
        "<think>r</think><box> [10,20,110,220]</box>",  # space between <box> and the list
        "<think>r</think><box>[10,20,110,220] </box>",  # space between the list and </box>
        "<think>r</think><box>[-1,20,110,220]</box>",  # a negative number is not the release box
        "<think>r</think><box>[10,20,110]</box>",  # three numbers
        "<think>r</think><box>10,20,110,220</box>",  # no brackets
        "<think></think><box>[10,20,110,220]</box>",  # empty reasoning: (.+?) needs one character
        "<think>r</think><box>[10,20,110,220]</box>\n",  # trailing newline: fullmatch, nothing stripped
        " <think>r</think><box>[10,20,110,220]</box>",  # leading space
        "<think>r</think><box>[10,20,110,220]</box> done",  # text after the box
        "<box>[10,20,110,220]</box>",  # no think
        "<think>r</think>",  # no box
    ],
)
def test_malformed_grounding_turn(text):
    assert not turn_is_well_formed(text, is_final=False)


def test_duplicated_tags_break_format():
    # Each tag exactly once: a second think block or a second box is malformed even though a lazy
    # regex could span them.
    assert not turn_is_well_formed("<think>a</think><think>b</think><box>[1,2,3,4]</box>", is_final=False)
    assert not turn_is_well_formed("<think>a</think><box>[1,2,3,4]</box><box>[5,6,7,8]</box>", is_final=False)
    assert not turn_is_well_formed("<think>a <think></think><box>[1,2,3,4]</box>", is_final=False)
    assert not turn_is_well_formed("<think>a</think><answer>B</answer><answer>B</answer>", is_final=True)


def test_grounding_turn_judged_as_final_is_malformed():
    assert turn_is_well_formed(GROUND, is_final=False)
    assert not turn_is_well_formed(GROUND, is_final=True)


# --------------------------------------------------------------------------------------- answer turns


def test_well_formed_answer_turn():
    assert turn_is_well_formed(ANSWER, is_final=True)
    # DOTALL: reasoning and answer may span lines.
    assert turn_is_well_formed("<think>line 1\nline 2</think>\n<answer>a\nb</answer>", is_final=True)
    # An answer turn judged as a grounding turn is not well formed.
    assert not turn_is_well_formed(ANSWER, is_final=False)


@pytest.mark.parametrize(
    "text",
    [
        "<think>r</think><answer></answer>",  # empty answer: .+? needs one character
        "<think>r</think><answer>C",  # cut before </answer>
        "<answer>C</answer>",  # no think
        "<think>r</think><answer>C</answer>.",  # text after the answer
    ],
)
def test_malformed_answer_turn(text):
    assert not turn_is_well_formed(text, is_final=True)


def test_box_and_answer_in_one_turn_is_never_well_formed():
    both = "<think>r</think><box>[1,2,3,4]</box><answer>C</answer>"
    assert not turn_is_well_formed(both, is_final=True)
    assert not turn_is_well_formed(both, is_final=False)
    # The answer regex alone would accept a box nested in the answer: the explicit both-rule rejects it.
    assert not turn_is_well_formed("<think>r</think><answer><box>[1,2,3,4]</box></answer>", is_final=True)
    # ...and an answer hidden in the reasoning of a grounding turn.
    assert not turn_is_well_formed("<think><answer>C</answer></think><box>[1,2,3,4]</box>", is_final=False)


def test_empty_turn():
    assert not turn_is_well_formed("", is_final=False)
    assert not turn_is_well_formed("", is_final=True)


# ----------------------------------------------------------------------------------- trajectory score


def test_empty_trajectory_scores_zero():
    assert format_score([]) == 0.0


def test_fraction_of_well_formed_turns():
    # 3 turns, 2 well formed (ground, answer) -> 2 * 2/3 = 4/3.
    bad = "<think>r</think><box> [1,2,3,4]</box>"
    assert format_score([GROUND, bad, ANSWER]) == pytest.approx(4 / 3)
    # All well formed -> 2.0; one of two -> 1.0; none -> 0.0.
    assert format_score([GROUND, ANSWER]) == 2.0
    assert format_score([bad, ANSWER]) == 1.0
    assert format_score([bad, ""]) == 0.0


def test_single_answer_turn():
    # Direct answer in round 1: one turn, final, well formed -> 2.0.
    assert format_score([ANSWER]) == 2.0


def test_never_answering_trajectory_judges_its_last_turn_as_final():
    # SPEC §3: the last turn is always judged as the final turn. Five well-formed box turns cut by the turn cap:
    # four good grounding turns, the fifth judged as an answer turn is malformed -> 2 * 4/5 = 1.6 (the release's
    # value; judging it as a grounding turn paid 2.0 for never answering).
    assert format_score([GROUND] * 5) == pytest.approx(1.6)
    assert final_turn_flags([GROUND] * 5) == [False, False, False, False, True]
    assert format_score([GROUND, GROUND]) == 1.0  # cut by the token budget after two box turns
    assert format_score([GROUND]) == 0.0  # one box turn, then the budget ran out
    assert final_turn_flags([]) == []


def test_answer_before_last_turn_is_malformed():
    # An answer ends the episode; one followed by more turns is judged as a grounding turn (malformed), and the
    # box turn after it is the last turn, judged as the final turn (malformed too) -> 0.
    assert format_score([ANSWER, GROUND]) == 0.0
    assert format_score([ANSWER, ANSWER]) == 1.0


def test_last_turn_with_box_and_answer_ends_but_scores_zero_for_that_turn():
    both = "<think>r</think><box>[1,2,3,4]</box><answer>C</answer>"
    # GROUND good, `both` is final (contains <answer>) but malformed -> 2 * 1/2 = 1.0.
    assert format_score([GROUND, both]) == 1.0


def test_long_digit_runs_do_not_stall():
    # The release regex backtracks catastrophically on long digit runs without a closing bracket (see
    # ground_r1.boxes); the format check matches the same language in linear time. 200 digits x 4 would
    # take far longer than this test's runtime with the release text.
    digits = ",".join(["1" * 200] * 4)
    assert not turn_is_well_formed(f"<think>r</think><box>[{digits}</box>", is_final=False)
    assert turn_is_well_formed(f"<think>r</think><box>[{digits}]</box>", is_final=False)
