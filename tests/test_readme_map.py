"""README's "Where things are" names every module and package of src/ground_r1 and every evaluation module."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "ground_r1"


def module_map() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Where things are") :]
    return section[: section.index("\n## ", 4)]


def test_the_readme_module_map_names_every_module_of_the_package():
    text = module_map()
    top = [
        p.name
        for p in PACKAGE.iterdir()
        if (p.suffix == ".py" and p.name != "__init__.py") or (p.is_dir() and not p.name.startswith("__"))
    ]
    missing = [name for name in top if not re.search(rf"\b{re.escape(name.removesuffix('.py'))}(\.py|/)", text)]
    assert not missing, f"README 'Where things are' misses: {missing}"


def test_the_readme_module_map_names_every_evaluation_and_cli_module():
    text = module_map()
    for folder in ("evaluation", "cli", "rollout"):
        names = [p.stem for p in (PACKAGE / folder).glob("*.py") if p.stem != "__init__"]
        missing = [n for n in names if not re.search(rf"\b{n}\b", text)]
        assert not missing, f"README 'Where things are' misses {folder}/: {missing}"
    for folder in (p.name for p in (ROOT / "benchmarks").iterdir() if p.is_dir()):
        assert f"{folder}/" in text, f"README 'Where things are' misses benchmarks/{folder}/"


def test_the_readme_module_map_names_every_subpackage():
    # evaluation/benchmarks/, models/families/: a package inside a package is named with its slash.
    text = module_map()
    nested = [p.parent for p in PACKAGE.glob("*/*/__init__.py")]
    assert {p.name for p in nested} >= {"benchmarks", "families"}  # the glob reads the package
    missing = [f"{p.parent.name}/{p.name}/" for p in nested if not re.search(rf"\b{p.name}/", text)]
    assert not missing, f"README 'Where things are' misses: {missing}"
