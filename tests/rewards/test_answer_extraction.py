"""Answer extraction (SPEC §3): first <answer>…</answer>, else text after <answer>, else the whole turn."""

from __future__ import annotations

from ground_r1.rollout.answer import extract_answer, has_answer, strip_answer_tags


def test_content_of_answer_block_is_stripped():
    assert extract_answer("<think>look</think> <answer>  On the pizza. \n</answer>") == "On the pizza."


def test_first_answer_block_wins():
    # Two blocks: the non-greedy search stops at the first closing tag -> "A", not "A</answer>...B".
    assert extract_answer("<answer>A</answer> then <answer>B</answer>") == "A"


def test_answer_spanning_lines():
    assert extract_answer("<answer>line one\nline two</answer>") == "line one\nline two"


def test_unclosed_answer_gives_text_after_tag():
    # A turn cut by the per-turn token limit inside the answer (SPEC §2).
    assert extract_answer("<think>t</think><answer> half an ans") == "half an ans"


def test_no_tag_gives_whole_turn():
    assert extract_answer("  The answer is B.  ") == "The answer is B."
    # A closing tag alone is not an answer tag: the whole turn comes back.
    assert extract_answer("x</answer>") == "x</answer>"


def test_empty_answer_block():
    assert extract_answer("<answer>   </answer>") == ""


def test_has_answer_ends_episode_even_when_malformed():
    assert has_answer("<think>t</think><box>[1,2,3,4]</box><answer>C</answer>")
    assert has_answer("<answer>")
    assert not has_answer("<think>t</think><box>[1,2,3,4]</box>")
    assert not has_answer("</answer>")


def test_strip_answer_tags_on_release_solutions():
    # Release multiple choice stores "<answer>C</answer>" (gqa/openimages, SPEC §6); free form is bare.
    assert strip_answer_tags("<answer>C</answer>") == "C"
    assert strip_answer_tags("Foliage.") == "Foliage."
    assert strip_answer_tags(" 10 years\n") == "10 years"
