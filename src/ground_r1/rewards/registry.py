"""Which accuracy handler scores which dataset (SPEC §3 table, SPEC §6 sub-dataset names).

The release crashed on an unknown dataset name in the middle of training; here an unknown name fails early
with a message that lists the known names and suggests the closest ones (:class:`UnknownDatasetError`), or
falls back to a documented ``default_handler`` when one is configured.

A handler is ``handler(final_turn, ground_truth) -> float | None`` (see :mod:`ground_r1.rewards.accuracy`);
user handlers are loaded from a dotted path ``package.module:function`` (or ``package.module.function``)
with :func:`resolve_handler`. A user handler receives the whole final turn; wrap an answer-level scorer
with :class:`~ground_r1.rewards.accuracy.OnAnswer` to get the SPEC §3 answer extraction first.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Iterable, Mapping

from ground_r1.rewards.accuracy import (
    DEFAULT_LETTER_RULE,
    Handler,
    OnAnswer,
    check_letter_rule,
    exact_match,
    exact_or_substring,
    exact_or_substring_strict,
    letter_or_wer,
    letter_or_wer_release,
    multiple_choice_letter,
    multiple_choice_letter_release,
    no_rule,
    rouge_score,
    wer_score,
)

# Handlers by name: usable as ``default_handler`` or in a user's mapping (``resolve_handler("wer")``).
NAMED_HANDLERS: dict[str, Handler] = {
    "letter_or_wer": letter_or_wer,
    "letter_or_wer_release": letter_or_wer_release,
    "multiple_choice_letter": multiple_choice_letter,
    "multiple_choice_letter_release": multiple_choice_letter_release,
    "wer": OnAnswer(wer_score),
    "rouge": OnAnswer(rouge_score),
    "exact_or_substring": OnAnswer(exact_or_substring),
    "exact_or_substring_strict": OnAnswer(exact_or_substring_strict),
    "exact_match": OnAnswer(exact_match),
    "no_rule": no_rule,
}

# SPEC §3 table over the 13 VisCoT sub-datasets of SPEC §6, plus the project's synthetic tasks.
DEFAULT_RULES: dict[str, str] = {
    "v7w": "letter_or_wer",
    "gqa": "letter_or_wer",
    "openimages": "letter_or_wer",
    "docvqa": "wer",
    "infographicsvqa": "wer",
    "textcap": "wer",
    "textvqa": "wer",
    "dude": "wer",
    "sroie": "wer",
    "flickr30k": "rouge",
    "vsr": "exact_or_substring",
    "cub": "exact_or_substring",
    "emotic": "no_rule",
    "zoom_synthetic": "exact_match",
    "grounding_synthetic": "exact_match",
}


class UnknownDatasetError(ValueError):
    """A dataset name with no accuracy handler (and no default handler configured)."""


class UnknownHandlerError(ValueError):
    """A handler spec that is neither a known name nor an importable ``package.module:function``."""


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """ " Did you mean 'x'?" for the closest candidates (compared lowercased), or "" when none is close."""
    by_lower = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.6)
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(by_lower[c]) for c in close) + "?"


class AccuracyRegistry:
    """Dataset name -> accuracy handler (SPEC §3).

    Args:
        handlers: initial mapping of dataset name -> handler.
        default_handler: used for names that are not registered. ``None`` (the default) makes an unknown
            name an error, which is what training wants (SPEC §3: "fail early, at data validation"). Set it
            to score every unknown sub-dataset the same way, e.g. ``NAMED_HANDLERS["wer"]``.
        letter_rule: which option-letter rule the handlers apply (``"spec"`` or ``"release"``), recorded so that
            tables can say which rule made them (:func:`build_registry` sets it with the handlers).

    ``emotic`` is registered with :func:`~ground_r1.rewards.accuracy.no_rule`: it is *known* (no error)
    but has no rule (``has_rule`` is False, the score is ``None`` -> "n/a").
    """

    def __init__(
        self,
        handlers: Mapping[str, Handler] | None = None,
        default_handler: Handler | None = None,
        letter_rule: str = DEFAULT_LETTER_RULE,
    ) -> None:
        self._handlers: dict[str, Handler] = {}
        self.default_handler = default_handler
        self.letter_rule = check_letter_rule(letter_rule)  # which letter rule its handlers apply (for labels)
        for name, handler in (handlers or {}).items():
            self.register(name, handler)

    def register(self, name: str, handler: Handler) -> None:
        """Map ``name`` to ``handler`` (replacing any previous one)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"dataset name must be a non-empty string, got {name!r}")
        if not callable(handler):
            raise TypeError(
                f"handler for dataset {name!r} must be callable(final_turn, ground_truth) -> float | None, "
                f"got {handler!r}"
            )
        self._handlers[name] = handler

    def get(self, name: str) -> Handler:
        """The handler of ``name``; the default handler for an unregistered name when one is configured.

        Raises:
            UnknownDatasetError: ``name`` is not registered and there is no default handler.
        """
        handler = self._handlers.get(name)
        if handler is not None:
            return handler
        if self.default_handler is not None:
            return self.default_handler
        raise UnknownDatasetError(
            f"no accuracy rule for dataset {name!r}.{did_you_mean(name, self._handlers)} "
            f"Known datasets: {', '.join(self.known_datasets())}. Fix the record's 'dataset' field, register "
            "a handler (AccuracyRegistry.register or a dotted path 'package.module:function'), or configure "
            "a default handler."
        )

    def known_datasets(self) -> list[str]:
        """Registered dataset names, sorted."""
        return sorted(self._handlers)

    def is_known(self, name: str) -> bool:
        """True when ``name`` is registered (with a rule or explicitly as "no rule")."""
        return name in self._handlers

    def has_rule(self, name: str) -> bool:
        """True when ``name`` gets a rule-based score: registered with a real handler, or unregistered with a
        default handler configured. False for "no rule" names (emotic) and unknown names without default."""
        handler = self._handlers.get(name, self.default_handler)
        return handler is not None and handler is not no_rule

    def __contains__(self, name: object) -> bool:
        return name in self._handlers

    def __repr__(self) -> str:
        return f"AccuracyRegistry({self.known_datasets()}, default_handler={self.default_handler!r})"


# The handler a rule name stands for under ``letter_rule: release`` (SPEC §3; the release's full letter rule).
_RELEASE_LETTER_HANDLERS = {
    "letter_or_wer": "letter_or_wer_release",
    "multiple_choice_letter": "multiple_choice_letter_release",
}


def build_registry(
    default_handler: str | Handler | None = None, letter_rule: str = DEFAULT_LETTER_RULE
) -> AccuracyRegistry:
    """A fresh registry with the SPEC §3 rules (:data:`DEFAULT_RULES`); ``default_handler`` may be a handler,
    a handler name of :data:`NAMED_HANDLERS` or a dotted path (see :func:`resolve_handler`).

    ``letter_rule`` (:data:`~ground_r1.rewards.accuracy.LETTER_RULES`) picks the option-letter rule of
    v7w/gqa/openimages: ``"spec"`` (SPEC §3 plus a bare-letter fallback) or ``"release"`` (the release's full
    rule). Training and the evaluation tables take it from the same config value.

    Raises:
        ValueError: an unknown ``letter_rule``.
    """
    check_letter_rule(letter_rule)
    default = resolve_handler(default_handler) if isinstance(default_handler, str) else default_handler
    rules = dict(DEFAULT_RULES)
    if letter_rule == "release":
        rules = {name: _RELEASE_LETTER_HANDLERS.get(rule, rule) for name, rule in rules.items()}
    return AccuracyRegistry(
        {name: NAMED_HANDLERS[rule] for name, rule in rules.items()}, default_handler=default, letter_rule=letter_rule
    )


# Shared, read-mostly: build your own with build_registry() rather than registering into this one.
DEFAULT_REGISTRY = build_registry()


def import_object(path: str) -> object:
    """Import ``package.module:attr`` or ``package.module.attr`` with importlib (never eval).

    Raises:
        UnknownHandlerError: the path is malformed, the module cannot be imported or lacks the attribute.
    """
    if ":" in path:
        module_name, _, attr = path.partition(":")
    else:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr or ":" in attr:
        raise UnknownHandlerError(
            f"{path!r} is not a dotted path; write 'package.module:function' or 'package.module.function'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise UnknownHandlerError(f"cannot import module {module_name!r} of {path!r}: {err}") from err
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as err:
            raise UnknownHandlerError(
                f"module {module_name!r} has no attribute {attr!r} (from {path!r}); check the name"
            ) from err
    return obj


def resolve_named(
    spec: str, named: Mapping[str, object], what: str, also: Mapping[str, object] | None = None, known: str = ""
) -> object:
    """The one resolver of reward names: ``named[spec]``, else ``also[spec]``, else the callable at the dotted path
    ``package.module:function`` / ``package.module.function`` (imported with importlib, never eval).

    ``what`` names the kind in errors ("accuracy handler", "reward function"); ``known`` is the list of valid names
    the error shows (default: ``named``'s).

    Raises:
        UnknownHandlerError: ``spec`` is no name and no dotted path (the closest names are suggested), or the path
            is not importable or not callable.
    """
    if spec in named:
        return named[spec]
    if also is not None and spec in also:
        return also[spec]
    if "." not in spec and ":" not in spec:
        names = [*named, *(also or {})]
        raise UnknownHandlerError(
            f"unknown {what} {spec!r}.{did_you_mean(spec, names)} Known: {known or ', '.join(sorted(named))}; or "
            "give a dotted path 'package.module:function'."
        )
    obj = import_object(spec)
    if not callable(obj):
        raise UnknownHandlerError(f"{what} {spec!r} resolved to {obj!r}, which is not callable")
    return obj


def resolve_handler(spec: str, registry: AccuracyRegistry | None = None) -> Handler:
    """A handler from a spec: a handler name (:data:`NAMED_HANDLERS`, e.g. "wer"), a dataset name of
    ``registry`` (its handler, e.g. "docvqa"), or a dotted path to a user function
    ``handler(final_turn, ground_truth) -> float | None`` (:func:`resolve_named`).

    Raises:
        UnknownHandlerError: the spec is none of these, or the dotted path is not importable or not callable.
    """
    registry = DEFAULT_REGISTRY if registry is None else registry
    datasets = {name: registry.get(name) for name in registry.known_datasets()}
    known = f"handlers {', '.join(sorted(NAMED_HANDLERS))}; datasets {', '.join(registry.known_datasets())}"
    return resolve_named(spec, NAMED_HANDLERS, "accuracy handler", also=datasets, known=known)  # type: ignore[return-value]


__all__ = [
    "DEFAULT_REGISTRY",
    "DEFAULT_RULES",
    "NAMED_HANDLERS",
    "AccuracyRegistry",
    "Handler",
    "UnknownDatasetError",
    "UnknownHandlerError",
    "build_registry",
    "did_you_mean",
    "import_object",
    "resolve_handler",
    "resolve_named",
]
