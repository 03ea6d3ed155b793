"""docs/method.md stays true: every test it names exists, and every preset value it quotes is the preset's."""

from __future__ import annotations

import ast
import re
from functools import lru_cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "method.md"
PRESETS = {
    name: yaml.safe_load((ROOT / "configs" / "grpo" / f"{name}.yaml").read_text())
    for name in ("release", "paper", "tiny_cpu")
}


@lru_cache(maxsize=None)
def defined_tests(path: Path) -> frozenset[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return frozenset(
        n.name
        for n in ast.walk(tree)
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name.startswith("test_")
    )


def all_tests() -> frozenset[str]:
    return frozenset().union(*(defined_tests(p) for p in (ROOT / "tests").rglob("test_*.py")))


def named_tests(text: str) -> list[tuple[str | None, str]]:
    """(file under tests/ or None, test name) for each test the doc names: ``file.py::test_x``, then
    ``::test_y`` for more tests of the same file, or a bare ``test_x`` (any file)."""
    out: list[tuple[str | None, str]] = []
    current = None
    for cell in re.findall(r"`([^`]+)`", text):
        if cell == "file::test":  # the doc's own notation, in its introduction
            continue
        if "::" in cell:
            file, _, name = cell.partition("::")
            current = file or current
            if current is None:
                pytest.fail(f"docs/method.md: `{cell}` continues no file")
            out.append((current, name))
        elif re.fullmatch(r"test_\w+", cell):
            out.append((None, cell))
    return out


def test_every_test_the_method_doc_names_exists():
    text = DOC.read_text(encoding="utf-8")
    named = named_tests(text)
    assert len(named) > 100  # the doc pins each method item to its tests
    missing = []
    for file, name in named:
        if file is None:
            found = name in all_tests()
        else:
            path = ROOT / "tests" / file
            found = path.is_file() and name in defined_tests(path)
        if not found:
            missing.append(f"{file or '(any file)'}::{name}")
    assert not missing, "docs/method.md names tests that do not exist:\n" + "\n".join(missing)


def test_the_method_doc_claims_no_missing_test_that_exists():
    # Each "no test" the doc once wrote had a test by then: a gap it states must be phrased with what is missing.
    assert not re.search(r"\*\*no test|\bno golden", DOC.read_text(encoding="utf-8"), re.IGNORECASE)


def quoted_values(text: str) -> list[tuple[str, str, str]]:
    """(preset, key, value as written) for each preset value the doc quotes: "`key` release / paper" (and
    "(tiny_cpu: v)" after it) in the §2-§4 tables, "`key: value`" in the §5 table (the release preset; the paper
    preset in its own row)."""
    out = []
    for line in text.splitlines():
        for key, release, paper, tiny in re.findall(
            r"`(\w+)` ([\w.+-]+) / ([\w.+-]+)(?: \(tiny_cpu: ([\w.+-]+)\))?", line
        ):
            out += [("release", key, release), ("paper", key, paper)] + ([("tiny_cpu", key, tiny)] if tiny else [])
        if line.startswith("| ") and "`" in line:
            preset = "paper" if line.startswith("| paper preset") else "release"
            out += [(preset, key, value) for key, value in re.findall(r"`(\w+): ([^`]+)`", line)]
    return out


def test_every_preset_value_the_method_doc_quotes_is_the_presets():
    quoted = [(p, k, v) for p, k, v in quoted_values(DOC.read_text(encoding="utf-8")) if k in PRESETS[p]]
    assert len(quoted) >= 30
    assert ("release", "max_completion_length", "5632") in quoted  # the drift issue 22 found (4608)
    wrong = [
        f"{p}: {k}: doc {v!r}, preset {PRESETS[p][k]!r}" for p, k, v in quoted if yaml.safe_load(v) != PRESETS[p][k]
    ]
    assert not wrong, "docs/method.md quotes values the presets do not have:\n" + "\n".join(wrong)
