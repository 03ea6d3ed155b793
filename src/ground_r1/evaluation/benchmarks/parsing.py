"""Answer parsing shared by the general benchmarks (SPEC §7): answer span, option letters, yes/no.

Every parser here takes free model text (a whole final turn, `<think>` included) and returns a
normalised answer or ``None`` when nothing can be read with confidence. ``None`` is never turned into
a guess: the metrics count it as "unparsed" (wrong for accuracy, reported separately).

Precedence of :func:`extract_choice_letter` (first rule that fires wins; defined so a letter that is
only an English article, the "A" of "A cat", never beats a clearer letter):

1. the whole answer span is one letter, optionally wrapped: ``B``, ``b``, ``(B)``, ``B.``, ``**B**``;
2. an answer cue followed by a letter: ``The answer is B``, ``Answer: (C) blue``, ``option D``; an
   upper-case letter after a cue always counts, a lower-case one only when nothing word-like follows
   it (so "the answer is a cat" does not read as "A"); the *last* cue wins (a model's conclusion
   comes last);
3. a leading option label: ``B. blue``, ``(C) blue``, ``C) blue``, ``D: text``, ``B`` then a new line;
4. exactly one distinct parenthesised capital letter anywhere: ``I pick (B) here``;
5. the span equals the text of exactly one option (needs ``options``);
6. exactly one distinct stand-alone capital letter, where an "A" followed by a lower-case word is an
   article unless that word is a verb or conjunction ("A is correct", "A or B");
7. the span contains the text of exactly one option as whole words (needs ``options``; an option whose
   text is inside another matched option's text is dropped first).

Anything else (two different letters at the same level, nothing at all) gives ``None``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ground_r1.rollout.answer import extract_answer, strip_answer_tags

__all__ = [
    "extract_answer_span",
    "extract_choice_letter",
    "normalize_text",
    "parse_options",
    "parse_yes_no_mme_official",
    "release_letter_match",
    "strip_answer_tags",
]

# One extraction rule for rollout, rewards and evaluation (SPEC §3): the rollout's own.
extract_answer_span = extract_answer


_MARKUP = re.compile(r"(\*\*|__|`|\\boxed\{|\\text\{)")


def _strip_markup(text: str) -> str:
    """Remove markdown emphasis, code ticks and LaTeX box wrappers; collapse spaces (not newlines)."""
    had_latex = "\\boxed{" in text or "\\text{" in text
    text = _MARKUP.sub("", text)
    if had_latex:
        text = text.replace("}", "")
    text = re.sub(r"[ \t]+", " ", text)
    return text.strip().strip("\"'“”‘’").strip()


def normalize_text(text: str) -> str:
    """Lower case, punctuation to spaces (keeping characters inside words and numbers), one space."""
    text = text.lower().strip()
    text = re.sub(r"[^\w\s%$.\-]", " ", text)
    text = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", text)  # keep "3.5", drop sentence dots
    text = re.sub(r"-(?!\d)", " ", text)  # keep "-1", split "well-known"
    return re.sub(r"\s+", " ", text).strip()


# Option lines as the release files write them: "A. text" (SEED, MMBench, MMMU, RealWorldQA), "A: text" (eleven
# RealWorldQA questions) or "(A) text" (MME-RealWorld-Lite). Letters up to H are accepted; a benchmark narrows
# them. A label without punctuation ("B text", one RealWorldQA question) only counts where it continues a run.
_OPTION_LINE = re.compile(r"^\s*(?:\(([A-H])\)|([A-H])[.):])\s*(.*?)\s*$")
_BARE_OPTION_LINE = re.compile(r"^\s*([B-H])\s+(\S.*?)\s*$")


def parse_options(problem: str, *, drop_nan: bool = False) -> dict[str, str]:
    """Options written one per line inside a question: ``{"A": "text", ...}`` in order.

    An option block is a sequence of label lines A, B, C, ... (``A. text``, ``A: text`` or ``(A) text``; a later
    label may be bare, ``B text``, when it is the next letter of a block already started); lines
    between two labels continue the earlier option (MMBench has multi-line options), while lines
    after the last label are not part of it (they are usually an instruction such as "Please answer
    directly ..."). The last block of two or more options wins, so a question line that happens to
    start with "A." does not hide the real options. ``drop_nan`` drops options whose text is "nan"
    (MMBench's missing options as the release wrote them).
    """
    lines = problem.splitlines()
    runs: list[list[tuple[int, str, str]]] = []
    current: list[tuple[int, str, str]] = []
    for index, line in enumerate(lines):
        match = _OPTION_LINE.match(line)
        if match is not None:
            letter, text = match.group(1) or match.group(2), match.group(3)
        else:
            bare = _BARE_OPTION_LINE.match(line)
            if bare is None or not current or bare.group(1) != chr(ord(current[-1][1]) + 1):
                continue
            letter, text = bare.group(1), bare.group(2)
        if letter == "A":
            if len(current) >= 2:
                runs.append(current)
            current = [(index, letter, text)]
        elif current and letter == chr(ord(current[-1][1]) + 1):
            current.append((index, letter, text))
        # any other label is text inside an option (or the question): ignored here
    if len(current) >= 2:
        runs.append(current)
    if not runs:
        return {}
    run = runs[-1]
    options: dict[str, str] = {}
    for position, (index, letter, text) in enumerate(run):
        if position + 1 < len(run):
            following = [ln.strip() for ln in lines[index + 1 : run[position + 1][0]] if ln.strip()]
            text = "\n".join([text, *following])
        options[letter] = text
    if drop_nan:
        options = {k: v for k, v in options.items() if v.strip().lower() != "nan"}
    return options


def _letter_class(letters: str, *, lower: bool) -> str:
    chars = "".join(sorted(set(letters.upper())))
    return "[" + chars + (chars.lower() if lower else "") + "]"


# Words after "A" that show it is a letter, not the article ("A is correct", "A and B", "A or C").
_AFTER_LETTER_A = frozenset(
    "is was would should will seems appears matches fits best correctly because describes must "
    "and or nor but vs versus then since as to can could might may has does looks".split()
)
_CUE = r"(?:answer|option|choice)"


def extract_choice_letter(
    text: str | None,
    valid_letters: str = "ABCD",
    options: Mapping[str, str] | None = None,
) -> str | None:
    """The option letter a free-form answer picks, upper case, or ``None``; precedence in the module doc.

    ``valid_letters`` limits what counts (a 5-option question passes "ABCDE"); ``options`` maps
    letters to option texts and enables matching the answer against them (rules 5 and 7).
    """
    if not text or not valid_letters:
        return None
    span = _strip_markup(extract_answer_span(text))
    if not span:
        return None
    any_case = _letter_class(valid_letters, lower=True)
    upper = _letter_class(valid_letters, lower=False)

    # 1. The whole span is one letter, wrapped in brackets or followed by punctuation.
    match = re.fullmatch(rf"[\s(\[{{<]*({any_case})[\s)\]}}>.:;,!]*", span)
    if match:
        return match.group(1).upper()

    # 2. Answer cue + letter; the last such cue wins.
    cue = re.compile(
        rf"\b{_CUE}(?:\s+(?:is|would be|should be|will be))?\s*[:=\-]?\s*"
        rf"(?:{_CUE}\s*)?[(\[]?({any_case})(?![A-Za-z0-9])([)\]]?)(.{{0,2}})",
        re.IGNORECASE | re.DOTALL,
    )
    found = None
    for match in cue.finditer(span):
        letter, closing, after = match.group(1), match.group(2), match.group(3)
        if letter.islower() and not closing and re.match(r"\s*[A-Za-z]", after):
            continue  # "the answer is a cat": an article, not an option
        found = letter.upper()
    if found:
        return found

    # 3. A leading option label.
    match = re.match(rf"[(\[]?({any_case})(?:[)\].:]|\s*\n|\s+[-–—]\s)", span)
    if match and (match.group(1).isupper() or span[0] in "([" or span[1:2] in ".)"):
        return match.group(1).upper()

    # 4. Exactly one distinct parenthesised capital letter.
    letters = set(re.findall(rf"\(({upper})\)", span))
    if len(letters) == 1:
        return letters.pop()

    usable = {k.upper(): v for k, v in (options or {}).items() if k.upper() in valid_letters.upper()}
    norm_span = normalize_text(span)
    # 5. The span is exactly one option's text.
    if usable:
        exact = [k for k, v in usable.items() if normalize_text(v) and normalize_text(v) == norm_span]
        if len(exact) == 1:
            return exact[0]

    # 6. Exactly one distinct stand-alone capital letter, articles excluded.
    letters = set()
    for match in re.finditer(rf"(?<![A-Za-z0-9'’])({upper})(?![A-Za-z0-9'’])", span):
        letter = match.group(1)
        if letter == "A":
            follow = re.match(r"\s+([a-z]+)", span[match.end() :])
            if follow and follow.group(1) not in _AFTER_LETTER_A:
                continue
        letters.add(letter)
    if len(letters) == 1:
        return letters.pop()
    if len(letters) > 1:
        return None

    # 7. The span contains exactly one option's text as whole words.
    if usable:
        hits = {}
        for k, v in usable.items():
            nv = normalize_text(v)
            if nv and re.search(rf"(?<!\w){re.escape(nv)}(?!\w)", norm_span):
                hits[k] = nv
        hits = {k: v for k, v in hits.items() if not any(v != w and v in w for w in hits.values())}
        if len(hits) == 1:
            return next(iter(hits))
    return None


def release_letter_match(text: str, answer: str) -> bool:
    """The release's letter rule (`multi_0526_new_version.py`), kept as a side-by-side variant.

    Correct when the first character of the whole turn, or else of the extracted answer, equals the
    ground-truth letter (case-insensitive). The release crashed on an empty turn; here it is wrong.
    """
    answer = answer.strip().lower()
    if not answer:
        return False
    whole = text.strip()
    span = extract_answer_span(text)
    return whole[:1].lower() == answer or span[:1].lower() == answer


def parse_yes_no_mme_official(text: str) -> str | None:
    """The MME authors' rule, which the release's `cal_MME.py` applied to the extracted answer.

    Lower case; "yes"/"no" as is; else "yes" if "yes" is in the first four characters, else "no" if
    "no" is; else ``None`` (their "other").
    """
    answer = extract_answer_span(text).lower()
    if answer in ("yes", "no"):
        return answer
    prefix = answer[:4]
    if "yes" in prefix:
        return "yes"
    if "no" in prefix:
        return "no"
    return None
