"""Accuracy handlers of the SPEC §3 table, each value derived by hand in the comments."""

from __future__ import annotations

import json
import math

import pytest

from ground_r1.rewards.accuracy import (
    OnAnswer,
    accuracy_score,
    exact_match,
    exact_or_substring,
    exact_or_substring_strict,
    is_option_letter,
    letter_or_wer,
    letter_or_wer_release,
    multiple_choice_letter,
    multiple_choice_letter_release,
    predicted_letter,
    release_letter_credit,
    rouge_score,
    wer_score,
)
from ground_r1.rewards.registry import AccuracyRegistry, UnknownDatasetError, build_registry
from ground_r1.rollout.answer import strip_answer_tags

# ------------------------------------------------------------------------------------- option letters


def test_letter_after_answer_tag_case_insensitive():
    # "<answer>\s*([A-Da-d])": the spaces are skipped, "c" upper-cased -> "C".
    assert predicted_letter("<think>t</think><answer> c </answer>") == "C"
    assert multiple_choice_letter("<think>t</think><answer> c </answer>", "C") == 1.0
    assert multiple_choice_letter("<think>t</think><answer>C. Window</answer>", "c") == 1.0
    assert multiple_choice_letter("<think>t</think><answer>B</answer>", "C") == 0.0


def test_letter_fallback_first_letter_with_dot():
    # No <answer>: the first "\b([A-D])\." anywhere in the turn.
    assert predicted_letter("I think it is B. blah, not C. bleh") == "B"
    assert multiple_choice_letter("I think it is B. blah", "B") == 1.0
    assert multiple_choice_letter("I think it is B. blah", "A") == 0.0
    # The fallback is upper-case only and needs the dot.
    assert predicted_letter("it is b. blah") is None
    assert predicted_letter("it is B blah") is None
    # <answer> whose content starts with another word: the fallback still searches the whole turn.
    assert predicted_letter("<think>t</think><answer>The answer is D.</answer>") == "D"


def test_letter_rule_release_weakness_pinned():
    # Faithful to the release: the first character of a word after <answer> is read as the letter,
    # so "Door" reads as "D" (documented in predicted_letter).
    assert predicted_letter("<answer>Door</answer>") == "D"
    # No letter anywhere -> None -> 0.
    assert multiple_choice_letter("<answer>window</answer>", "C") == 0.0


def test_bare_letter_fallback_of_the_default_rule():
    # A final turn that is only a letter: neither SPEC regex fires, the bare-letter fallback reads it (the release
    # scored it 1; the SPEC rule alone scored 0).
    assert predicted_letter("C") == "C"
    assert predicted_letter(" c\n") == "C"
    assert multiple_choice_letter("C", "C") == 1.0
    assert letter_or_wer("c", "C") == 1.0
    # Not bare: a letter inside more text is not read by the fallback ("C" then text, a letter outside A-D).
    assert predicted_letter("C is my guess") is None
    assert predicted_letter("E") is None
    assert predicted_letter("<think>t</think> C") is None


def test_release_letter_rule_credits_a_dotted_letter_elsewhere():
    # The release's rule (accuracy_reward_functions.py v7w): a wrong <answer> letter is still credited when the first
    # "X." of the turn (here in the reasoning) is the ground truth; the default rule reads "B" and scores 0.
    turn = "<think>C. looks right, but</think><answer>B</answer>"
    assert release_letter_credit(turn, "C") and multiple_choice_letter_release(turn, "C") == 1.0
    assert multiple_choice_letter(turn, "C") == 0.0
    assert release_letter_credit(turn, "B")  # the <answer> letter itself, too
    assert not release_letter_credit(turn, "A")
    # Bare letters and "c." without tags, as the release compared the whole stripped turn.
    assert release_letter_credit(" C ", "c") and release_letter_credit("C.", "C")
    assert not release_letter_credit("C is my guess", "C")  # neither regex, and the turn is not "c"
    assert letter_or_wer_release(turn, "C") == 1.0
    assert letter_or_wer_release("<answer>On the pizza.</answer>", "On the pizza.") == 1.0  # free text: WER


def test_is_option_letter():
    assert is_option_letter("C") and is_option_letter(" d ")
    assert not is_option_letter("E")
    assert not is_option_letter("A.")
    assert not is_option_letter("On the pizza.")


def test_letter_or_wer_switches_on_ground_truth():
    turn = "<think>t</think><answer>on the pizza.</answer>"
    # Free-form v7w ground truth: WER on the extracted answer; identical after lowercasing -> 1.0.
    assert letter_or_wer(turn, "On the pizza.") == 1.0
    # Letter ground truth: the letter rule ("o" is no option letter, no "X." either) -> 0.0.
    assert letter_or_wer(turn, "A") == 0.0


# ------------------------------------------------------------------------------------------------ WER


def test_wer_symmetric_min_deletions():
    # gt 6 words, pred "the cat sat": WER(gt, pred) = 3 deletions / 6 = 0.5;
    # WER(pred, gt) = 3 insertions / 3 = 1.0; min 0.5 -> 1 - 0.5 = 0.5.
    assert wer_score("the cat sat", "the cat sat on the mat") == pytest.approx(0.5)


def test_wer_symmetric_min_mixed():
    # gt "a b", pred "a c d e": WER(gt, pred) = (1 sub + 2 ins) / 2 = 1.5;
    # WER(pred, gt) = (1 sub + 2 del) / 4 = 0.75; min 0.75 -> 0.25.
    assert wer_score("a c d e", "a b") == pytest.approx(0.25)
    # Symmetric: swapping the two gives the same score.
    assert wer_score("a b", "a c d e") == pytest.approx(0.25)


def test_wer_lowercase_whitespace_and_punctuation():
    assert wer_score("ON  the\nPizza.", "On the pizza.") == 1.0
    # Punctuation is part of the word, as in the release: 1 substitution / 1 word both ways -> 0.
    assert wer_score("foliage", "Foliage.") == 0.0


def test_wer_empty_and_disjoint():
    assert wer_score("", "A. C. Monk") == 0.0
    assert wer_score("   ", "A. C. Monk") == 0.0
    assert wer_score("anything", "") == 0.0
    # gt "a", pred "b c": WER(gt, pred) = 2/1, WER(pred, gt) = 2/2 = 1 -> 1 - 1 = 0.
    assert wer_score("b c", "a") == 0.0


# ---------------------------------------------------------------------------------------------- ROUGE


def test_rouge_identical_sentence_is_one():
    gt = "The person in the green jacket is sitting on the floor."
    assert rouge_score(gt, gt) == pytest.approx(1.0)


def test_rouge_partial_hand_computed():
    # Tokens (lowercased, stemmed): gt [a, man, is, sit], pred [a, man].
    # R1: P 2/2, R 2/4 -> F 2/3. R2: pred {a man}, gt {a man, man is, is sit}: P 1, R 1/3 -> F 1/2.
    # RL: LCS 2 -> F 2/3. Mean (2/3 + 1/2 + 2/3) / 3 = 11/18.
    assert rouge_score("a man", "a man is sitting") == pytest.approx(11 / 18)


def test_rouge_stemming_and_one_word_quirk():
    # Porter stemming: dogs -> dog, running/runs -> run: identical token lists -> 1.0.
    assert rouge_score("dogs running", "dog runs") == pytest.approx(1.0)
    # One identical word has no bigram: (1 + 0 + 1) / 3 = 2/3 (documented quirk).
    assert rouge_score("yes", "yes") == pytest.approx(2 / 3)
    assert rouge_score("", "a man") == 0.0


# ------------------------------------------------------------------------------ exact / substring


def test_exact_or_substring():
    assert exact_or_substring("Yes", "yes") == 1.0
    assert exact_or_substring(" dog ", "Dog") == 1.0
    assert exact_or_substring("yes, it does", "Yes") == 0.6
    assert exact_or_substring("cat", "dog") == 0.0
    assert exact_or_substring("", "dog") == 0.0


def test_exact_or_substring_yes_no_weakness_and_strict_variant():
    # Known weakness (SPEC §3): hedging earns 0.6 whatever the truth is.
    assert exact_or_substring("yes no", "yes") == 0.6
    assert exact_or_substring("yes no", "no") == 0.6
    # Character substring: "no" is inside "not".
    assert exact_or_substring("not sure", "no") == 0.6
    # Strict: exact only.
    assert exact_or_substring_strict("yes no", "yes") == 0.0
    assert exact_or_substring_strict("YES", "yes") == 1.0
    assert exact_or_substring_strict("", "") == 0.0


def test_exact_match_normalised():
    assert exact_match("Foliage.", " foliage") == 1.0
    assert exact_match("Red   car!", "red car") == 1.0
    assert exact_match("red", "red car") == 0.0
    assert exact_match("...", "") == 0.0  # normalises to empty: an empty prediction scores 0


# ------------------------------------------------------------------------------------ accuracy_score


def test_accuracy_score_multiple_choice_solution_with_tags():
    # gqa solution "<answer>C</answer>" -> gt "C" -> letter rule.
    assert accuracy_score("<think>t</think><answer> c </answer>", "<answer>C</answer>", "gqa") == 1.0
    assert accuracy_score("<think>t</think><answer>A</answer>", "<answer>C</answer>", "openimages") == 0.0


def test_accuracy_score_free_form_uses_extracted_answer():
    # docvqa: WER on "A. C. Monk" (the letter rule does not apply to docvqa) -> exact -> 1.0.
    assert accuracy_score("<think>t</think><answer>A. C. Monk</answer>", "A. C. Monk", "docvqa") == 1.0
    # vsr: exact/substring on the extracted answer, not on the reasoning.
    assert accuracy_score("<think>dog? no</think><answer>Yes</answer>", "Yes", "vsr") == 1.0
    assert accuracy_score("<think>t</think><answer>yes it does</answer>", "Yes", "cub") == 0.6


def test_accuracy_score_emotic_is_na_and_unknown_raises():
    assert accuracy_score("<answer>anger</answer>", "anger", "emotic") is None
    with pytest.raises(UnknownDatasetError):
        accuracy_score("<answer>x</answer>", "x", "not_a_dataset")


def test_accuracy_score_clips_and_rejects_non_numbers():
    registry = AccuracyRegistry(
        {
            "high": lambda turn, gt: 1.7,
            "low": lambda turn, gt: -0.2,
            "nan": lambda turn, gt: math.nan,
            "text": lambda turn, gt: "good",
        }
    )
    assert accuracy_score("x", "y", "high", registry=registry) == 1.0
    assert accuracy_score("x", "y", "low", registry=registry) == 0.0
    for name in ("nan", "text"):
        with pytest.raises(ValueError, match="finite number"):
            accuracy_score("x", "y", name, registry=registry)


def test_on_answer_wraps_a_scorer():
    handler = OnAnswer(exact_match)
    assert handler("<think>t</think><answer>Red car.</answer>", "red car") == 1.0
    assert "exact_match" in repr(handler)


def test_default_handler_scores_unknown_dataset():
    registry = build_registry(default_handler="exact_match")
    assert accuracy_score("<answer>Seven</answer>", "seven", "my_new_set", registry=registry) == 1.0


def test_release_samples_score_one_with_their_own_answer(release_format_dir):
    # Every real VisCoT record answered with its own (tag-stripped) solution scores 1.0 under its rule
    # (the flickr30k solutions are multi-word sentences, so ROUGE is 1), emotic is n/a.
    path = release_format_dir / "visualCoT_eval_subset150_choice.sample.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    assert len({r["dataset"] for r in records}) == 13
    for record in records:
        turn = f"<think>reasoning</think><answer>{strip_answer_tags(record['solution'])}</answer>"
        score = accuracy_score(turn, record["solution"], record["dataset"])
        if record["dataset"] == "emotic":
            assert score is None
        else:
            assert score == pytest.approx(1.0), record
