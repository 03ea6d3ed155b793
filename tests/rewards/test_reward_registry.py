"""Accuracy registry (SPEC §3): the default rules, useful errors, default handler, dotted-path handlers."""

from __future__ import annotations

import textwrap

import pytest

from ground_r1.rewards.accuracy import accuracy_score, letter_or_wer, no_rule
from ground_r1.rewards.registry import (
    DEFAULT_REGISTRY,
    NAMED_HANDLERS,
    AccuracyRegistry,
    UnknownDatasetError,
    UnknownHandlerError,
    build_registry,
    did_you_mean,
    import_object,
    resolve_handler,
)

VISCOT = {
    "docvqa", "textcap", "textvqa", "dude", "sroie", "infographicsvqa", "flickr30k",
    "v7w", "gqa", "openimages", "vsr", "cub", "emotic",
}  # fmt: skip


def test_default_registry_covers_viscot_and_synthetic_tasks():
    # SPEC §6: 13 VisCoT sub-datasets, plus the project's two synthetic tasks.
    assert set(DEFAULT_REGISTRY.known_datasets()) == VISCOT | {"zoom_synthetic", "grounding_synthetic"}
    assert DEFAULT_REGISTRY.known_datasets() == sorted(DEFAULT_REGISTRY.known_datasets())


@pytest.mark.parametrize(
    ("dataset", "rule"),
    [
        ("v7w", "letter_or_wer"), ("gqa", "letter_or_wer"), ("openimages", "letter_or_wer"),
        ("docvqa", "wer"), ("infographicsvqa", "wer"), ("textcap", "wer"), ("textvqa", "wer"),
        ("dude", "wer"), ("sroie", "wer"), ("flickr30k", "rouge"), ("vsr", "exact_or_substring"),
        ("cub", "exact_or_substring"), ("emotic", "no_rule"), ("zoom_synthetic", "exact_match"),
        ("grounding_synthetic", "exact_match"),
    ],
)  # fmt: skip
def test_spec_table(dataset, rule):
    assert DEFAULT_REGISTRY.get(dataset) is NAMED_HANDLERS[rule]


def test_unknown_dataset_error_lists_names_and_suggests():
    with pytest.raises(UnknownDatasetError) as info:
        DEFAULT_REGISTRY.get("docvq")
    message = str(info.value)
    assert "'docvq'" in message
    assert "Did you mean 'docvqa'" in message
    for name in VISCOT:  # every known name is listed
        assert name in message
    assert isinstance(info.value, ValueError)


def test_did_you_mean_is_case_insensitive_and_empty_when_nothing_is_close():
    assert did_you_mean("DocVQA", ["docvqa", "gqa"]) == " Did you mean 'docvqa'?"
    assert did_you_mean("zzzzzz", ["docvqa", "gqa"]) == ""
    with pytest.raises(UnknownDatasetError) as info:
        DEFAULT_REGISTRY.get("zzzzzz")
    assert "Did you mean" not in str(info.value)


def test_has_rule_and_is_known():
    assert DEFAULT_REGISTRY.has_rule("docvqa")
    assert not DEFAULT_REGISTRY.has_rule("emotic")  # known, but n/a
    assert DEFAULT_REGISTRY.is_known("emotic") and "emotic" in DEFAULT_REGISTRY
    assert not DEFAULT_REGISTRY.has_rule("mystery")
    assert not DEFAULT_REGISTRY.is_known("mystery")
    assert DEFAULT_REGISTRY.get("emotic") is no_rule


def test_default_handler_for_unknown_names_only():
    registry = build_registry(default_handler="wer")
    assert registry.get("mystery") is NAMED_HANDLERS["wer"]
    assert registry.has_rule("mystery")
    # Registered names keep their rule; emotic stays "no rule".
    assert registry.get("gqa") is letter_or_wer
    assert not registry.has_rule("emotic")
    # The shared default registry is untouched.
    assert DEFAULT_REGISTRY.default_handler is None


def test_register_and_validation():
    registry = AccuracyRegistry()
    assert registry.known_datasets() == []

    def always_half(final_turn, ground_truth):
        return 0.5

    registry.register("mine", always_half)
    assert registry.get("mine") is always_half
    with pytest.raises(TypeError, match="must be callable"):
        registry.register("bad", "not a function")
    with pytest.raises(ValueError, match="non-empty string"):
        registry.register("", always_half)


def test_resolve_handler_by_name():
    assert resolve_handler("rouge") is NAMED_HANDLERS["rouge"]
    assert resolve_handler("docvqa") is NAMED_HANDLERS["wer"]  # a dataset name gives its handler
    with pytest.raises(UnknownHandlerError) as info:
        resolve_handler("wr")
    assert "Did you mean 'wer'" in str(info.value)
    assert "exact_or_substring_strict" in str(info.value)


def test_resolve_handler_dotted_paths(tmp_path, monkeypatch):
    module = tmp_path / "my_reward_handlers.py"
    module.write_text(
        textwrap.dedent(
            """
            def first_word(final_turn, ground_truth):
                return 1.0 if final_turn.split()[0] == ground_truth else 0.0

            NOT_CALLABLE = 3
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for spec in ("my_reward_handlers:first_word", "my_reward_handlers.first_word"):
        handler = resolve_handler(spec)
        assert handler("cat sat", "cat") == 1.0
        assert handler("dog sat", "cat") == 0.0
    # The library's own handlers by path, both spellings.
    assert resolve_handler("ground_r1.rewards.accuracy:no_rule") is no_rule
    assert resolve_handler("ground_r1.rewards.accuracy.letter_or_wer") is letter_or_wer
    # Used as a default handler.
    registry = build_registry(default_handler="my_reward_handlers:first_word")
    assert registry.get("new_set")("cat", "cat") == 1.0

    with pytest.raises(UnknownHandlerError, match="not callable"):
        resolve_handler("my_reward_handlers:NOT_CALLABLE")
    with pytest.raises(UnknownHandlerError, match="no attribute"):
        resolve_handler("my_reward_handlers:missing")
    with pytest.raises(UnknownHandlerError, match="cannot import module"):
        resolve_handler("no_such_module_xyz:handler")


def test_import_object_never_evaluates():
    # Text that would do something under eval is just a missing attribute here.
    with pytest.raises(UnknownHandlerError, match="no attribute"):
        import_object("os:system('echo hi')")
    with pytest.raises(UnknownHandlerError, match="not a dotted path"):
        import_object(":handler")


def test_letter_rule_picks_the_option_letter_handler():
    # One config value (letter_rule) for training and the tables: "release" swaps the three letter datasets only.
    release = build_registry(letter_rule="release")
    assert release.letter_rule == "release" and DEFAULT_REGISTRY.letter_rule == "spec"
    for dataset in ("v7w", "gqa", "openimages"):
        assert release.get(dataset) is NAMED_HANDLERS["letter_or_wer_release"]
        assert DEFAULT_REGISTRY.get(dataset) is NAMED_HANDLERS["letter_or_wer"]
    assert release.get("docvqa") is NAMED_HANDLERS["wer"]
    turn = "<think>C. looks right</think><answer>B</answer>"
    assert accuracy_score(turn, "<answer>C</answer>", "gqa", release) == 1.0
    assert accuracy_score(turn, "<answer>C</answer>", "gqa", DEFAULT_REGISTRY) == 0.0
    with pytest.raises(ValueError, match="unknown letter_rule 'strict'; valid: spec, release"):
        build_registry(letter_rule="strict")
