"""Answer parsing for the general benchmarks: option letters, yes/no, option lines (SPEC §7)."""

from __future__ import annotations

import pytest

from ground_r1.evaluation.benchmarks.parsing import (
    extract_answer_span,
    extract_choice_letter,
    normalize_text,
    parse_options,
    parse_yes_no_mme_official,
    release_letter_match,
)
from ground_r1.evaluation.benchmarks.reference import mme_yes_no, pope_yes_no

OPTIONS = {"A": "red", "B": "blue", "C": "green", "D": "a cat"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # rule 1: the whole answer is one letter, however wrapped
        ("<answer>B</answer>", "B"),
        ("B", "B"),
        ("(B)", "B"),
        ("B.", "B"),
        ("b", "B"),
        ("**B**", "B"),
        ("\\boxed{C}", "C"),
        ("<think>A or B? Let me look.</think><answer> D </answer>", "D"),
        # rule 2: an answer cue
        ("The answer is B", "B"),
        ("Answer: (C) blue", "C"),
        ("The answer is b", "B"),
        ("The correct option is D.", "D"),
        ("Option B", "B"),
        # rule 3: a leading option label
        ("A. red", "A"),
        ("C) green", "C"),
        ("D: it is a cat", "D"),
        ("B\nBecause the sky is blue", "B"),
        # rule 4: one parenthesised letter
        ("I would pick (B) here", "B"),
        # rule 6: one stand-alone capital, the article "A" excluded
        ("A cat sits there; C is correct", "C"),
        ("A is correct", "A"),
    ],
)
def test_letter_from_messy_answers(text: str, expected: str) -> None:
    assert extract_choice_letter(text, "ABCD") == expected


def test_article_a_never_beats_a_clearer_letter() -> None:
    # "A cat ..." starts with a capital A, but the cue "the answer is (C)" is the clearer letter (rule 2
    # fires before rule 6, and rule 6 would discard "A cat" as an article anyway).
    assert extract_choice_letter("A cat is sitting on the mat, so the answer is (C).", "ABCD") == "C"
    # With nothing clearer, an article alone is no answer.
    assert extract_choice_letter("A cat is on the mat.", "ABCD") is None
    # A lower-case "a" after a cue followed by a word is the article: "the answer is a cat".
    assert extract_choice_letter("the answer is a cat", "ABCD") is None


def test_last_cue_wins_and_cues_beat_leading_labels() -> None:
    # The model lists options, then concludes: the leading "A." must not win over "Answer: B".
    assert extract_choice_letter("A. red\nB. blue\nAnswer: B", "ABCD") == "B"
    assert extract_choice_letter("The answer is A. Wait, no: the answer is C.", "ABCD") == "C"


def test_listing_the_options_is_not_an_answer_cue() -> None:
    # "Options: A, ..." names letters without choosing one; the parenthesised (C) is the choice.
    assert extract_choice_letter("Options: A, B, C, D. I choose (C).", "ABCD") == "C"


def test_ambiguous_or_absent_letters_give_none() -> None:
    assert extract_choice_letter("Between B and C, hard to say", "ABCD") is None  # two at rule 6
    assert extract_choice_letter("", "ABCD") is None
    assert extract_choice_letter(None, "ABCD") is None
    assert extract_choice_letter("answered nothing useful", "ABCD") is None


def test_valid_letters_limit_the_answer() -> None:
    assert extract_choice_letter("(E) none of them", "ABCD") is None
    assert extract_choice_letter("(E) none of them", "ABCDE") == "E"
    assert extract_choice_letter("E", "ABCDE") == "E"


def test_option_text_matching_needs_options() -> None:
    # rule 5: the answer is exactly one option's text
    assert extract_choice_letter("blue", "ABCD", OPTIONS) == "B"
    assert extract_choice_letter("<answer>Green.</answer>", "ABCD", OPTIONS) == "C"
    assert extract_choice_letter("blue", "ABCD") is None
    # rule 7: contained as whole words, exactly one option
    assert extract_choice_letter("I think it is blue.", "ABCD", OPTIONS) == "B"
    assert extract_choice_letter("It is red or blue", "ABCD", OPTIONS) is None
    # "bluest" does not contain the word "blue"
    assert extract_choice_letter("the bluest one", "ABCD", OPTIONS) is None


def test_nested_option_texts_prefer_the_longer_match() -> None:
    options = {"A": "red", "B": "red car", "C": "bus"}
    # Both "red" and "red car" occur; "red" is inside "red car", so only B is left.
    assert extract_choice_letter("it is the red car", "ABC", options) == "B"


def test_parse_options_both_release_formats() -> None:
    assert parse_options("How many?\nA. One\nB. Two\nC. Three\nD. Four") == {
        "A": "One", "B": "Two", "C": "Three", "D": "Four",
    }  # fmt: skip
    rwl = "Where?\n(A) up\n(B) down\n(C) left\n(D) right\n(E) none"
    assert list(parse_options(rwl)) == ["A", "B", "C", "D", "E"]
    assert parse_options(rwl)["E"] == "none"


def test_parse_options_ignores_question_lines_and_trailing_instructions() -> None:
    text = "A. Smith wrote a letter.\nWho wrote it?\nA. Smith\nB. Jones\nPlease answer with the letter."
    # The last block of A, B, ... labels is the options; the instruction after B is not part of B.
    assert parse_options(text) == {"A": "Smith", "B": "Jones"}
    assert parse_options("No options here") == {}
    assert parse_options("A. lonely label is no option block") == {}


def test_parse_options_multi_line_options() -> None:
    # MMBench writes options over several lines: lines between two labels continue the earlier option.
    text = "Which text?\nA. First line.\nSecond line.\nB. Cat street.\nC. Temple.\nD. Flags"
    assert parse_options(text) == {
        "A": "First line.\nSecond line.", "B": "Cat street.", "C": "Temple.", "D": "Flags",
    }  # fmt: skip


def test_parse_options_drops_mmbench_nan() -> None:
    text = "Which?\nA. rubber\nB. cotton\nC. nan\nD. nan\n"
    assert parse_options(text) == {"A": "rubber", "B": "cotton", "C": "nan", "D": "nan"}
    assert parse_options(text, drop_nan=True) == {"A": "rubber", "B": "cotton"}


@pytest.mark.parametrize(
    ("text", "pope", "lmms_mme", "official"),
    [
        ("Yes.", "yes", "yes", "yes"),
        ("No, there is none.", "no", "no", "no"),
        ("<think>hmm</think><answer>yes</answer>", "yes", "yes", "yes"),
        ("**Yes**", "yes", None, None),  # MME rules: the first 4 characters "**ye" hold neither word
        ("The answer is yes", "yes", None, None),  # MME rules look at the first 4 characters only
        ("There is no dog.", "no", None, None),  # POPE: "no" among the first sentence's words
        ("There is not a dog in the image.", "no", None, None),
        ("yes and no", "no", "yes", "yes"),  # POPE: any "no" word wins
        ("Not sure", "yes", "no", "no"),  # POPE looks for "not", not "Not"; MME: "not " contains "no"
        ("Yesterday", "yes", "yes", "yes"),
        ("y", "yes", "yes", None),  # lmms-eval reads a bare y/n; the MME authors' rule does not
        ("n.", "yes", "no", None),  # lmms-eval drops the dot first
        ("", "yes", None, None),  # POPE: never unread
    ],
)
def test_yes_no_parsers(text: str, pope: str, lmms_mme: str | None, official: str | None) -> None:
    assert pope_yes_no(extract_answer_span(text)) == pope
    assert mme_yes_no(extract_answer_span(text)) == lmms_mme
    assert parse_yes_no_mme_official(text) == official


def test_release_letter_rule_reads_first_characters() -> None:
    # First char of the whole turn, else of the extracted answer.
    assert release_letter_match("B. blue", "B")
    assert release_letter_match("<think>t</think><answer>C</answer>", "c")
    # The release did not look further: "The answer is B" starts with "T".
    assert not release_letter_match("The answer is B", "B")
    assert not release_letter_match("", "B")


def test_normalize_text_keeps_numbers() -> None:
    assert normalize_text("  Yes. ") == "yes"
    assert normalize_text("x = -1, or 3.5!") == "x -1 or 3.5"
    assert normalize_text("Well-known BUS") == "well known bus"
