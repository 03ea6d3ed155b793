"""No family-specific name, image geometry or coordinate convention outside the family adapters (issue 20, DESIGN.md
"A model family is one module"). Read from the code itself (the AST: identifiers, imports and non-docstring
strings; comments and docstrings may explain), so the check fails the moment someone writes
`Qwen3VLForConditionalGeneration` or `patch_size = 14` into the rollout."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import ground_r1

PACKAGE = Path(ground_r1.__file__).parent
FAMILY_NAME = re.compile(r"qwen[23](_5)?_?vl|qwen3_5|Qwen2_5_VL|Qwen2VL|Qwen3VL|Qwen3_5", re.I)
# Where a family name may appear, and why.
ALLOWED = {
    "models/families": "the adapters themselves",
    "demo/tiny.py": "the tiny builder: one config per family (layer counts and widths, not geometry)",
    "data/images.py": "transformers' smart_resize, imported from its qwen2_vl module (the records' release sizes)",
}
# Geometry literals: a patch / merge / factor named with a bare 14, 16, 28 or 32.
GEOMETRY = re.compile(
    r"(patch|merge|factor|cell)\w*\s*[:=,]\s*(14|16|28|32)\b|\"(patch_size|merge_size)\",\s*\d+", re.I
)
GEOMETRY_ALLOWED = {
    "data/images.py": "PATCH_FACTOR = 28: the release's records' sizes (input_pixels SFT targets), documented there",
    "demo/instruct_recipe.py": "the demo recipe of the default tiny Qwen2.5-VL instruct base (its heads' cells)",
    "demo/tiny.py": "the tiny builder",
    "models/families": "the adapters' reference geometry (docs and the tiny builder, never a default)",
}


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                ids.add(id(first.value))
    return ids


def _code_words(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = _docstrings(tree)
    words = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            words.append((node.lineno, node.id))
        elif isinstance(node, ast.Attribute):
            words.append((node.lineno, node.attr))
        elif isinstance(node, ast.ImportFrom):
            words += [(node.lineno, node.module or "")] + [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            words += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            words.append((node.lineno, node.value))
    return words


def _allowed(rel: str, table: dict) -> bool:
    return any(rel == k or rel.startswith(k + "/") for k in table)


def test_family_names_live_only_in_the_family_adapters():
    assert len(list(PACKAGE.rglob("*.py"))) > 80  # the whole package is read
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if _allowed(rel, ALLOWED):
            continue
        found += [f"{rel}:{line}: {word!r}" for line, word in _code_words(path) if FAMILY_NAME.search(word)]
    assert not found, "family-specific names outside models/families:\n" + "\n".join(found)


def test_no_image_geometry_constant_outside_the_family_adapters():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if _allowed(rel, GEOMETRY_ALLOWED):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if GEOMETRY.search(code):
                found.append(f"{rel}:{number}: {line.strip()}")
    assert not found, "image geometry constants outside models/families:\n" + "\n".join(found)


def test_the_checks_can_fail():
    """Negative controls: the patterns catch what the rollout used to hold."""
    assert FAMILY_NAME.search("Qwen2_5_VLForConditionalGeneration") and FAMILY_NAME.search("qwen3_vl")
    assert GEOMETRY.search('self.patch_size = int(getattr(processor.image_processor, "patch_size", 14))')
    assert GEOMETRY.search("PATCH_FACTOR = 28") and GEOMETRY.search("MERGED_CELL = 28")
