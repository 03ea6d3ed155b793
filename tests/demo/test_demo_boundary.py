"""The demo lives in its own room: the core (everything under src/ground_r1 but demo/) imports ground_r1.demo only
at the embedded-default entry points (a run given no model or no data) and where the test-only `scripted_policy`
option asks for a scripted policy, always inside the function that needs it, so a real run never loads it."""

from __future__ import annotations

import ast
from pathlib import Path

import ground_r1

PACKAGE = Path(ground_r1.__file__).resolve().parent

# (module under src/ground_r1, enclosing function): the only places the core may import the demo.
ENTRY_POINTS = {
    ("cli/evaluate.py", "apply_demo_defaults"),  # no --model_path: the tiny model
    ("evaluation/benchmarks/viscot.py", "VisCoTSpec.demo_data"),  # no data: the synthetic VisCoT set
    ("cli/evaluate_controls.py", "main"),  # no data: the synthetic held-out set
    ("cli/prepare_sft_data.py", "main"),  # no data: the synthetic records
    ("cli/train_grpo.py", "default_model_path"),  # no MODEL_PATH: the tiny model
    ("cli/train_grpo.py", "load_datasets"),  # no DATA_PATH: the synthetic task
    ("sft/train.py", "_resolve_model_path"),  # no model: the tiny model
    ("sft/train.py", "_synthetic_records"),  # no data: the synthetic records
    ("evaluation/refcoco.py", "write_synthetic_refcoco"),  # no RefCOCO file: synthetic scenes in its format
    ("trainer/grpo_trainer.py", "GroundR1Trainer._make_generator"),  # scripted_policy (tests and benchmarks only)
    ("cli/evaluate.py", "stage_infer.make_engine"),  # evaluate --scripted_policy (tests only)
}


def demo_imports() -> set[tuple[str, str]]:
    """(module, enclosing function or "" at module level) of every import of ground_r1.demo outside demo/."""
    found = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("demo/"):
            continue

        def visit(node: ast.AST, scope: list[str], rel: str = rel) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    visit(child, [*scope, child.name], rel)
                    continue
                names = []
                if isinstance(child, ast.ImportFrom) and child.module:
                    names = [child.module, *(f"{child.module}.{a.name}" for a in child.names)]
                elif isinstance(child, ast.Import):
                    names = [a.name for a in child.names]
                if any(n == "ground_r1.demo" or n.startswith("ground_r1.demo.") for n in names):
                    found.add((rel, ".".join(scope)))
                visit(child, scope, rel)

        visit(ast.parse(path.read_text(encoding="utf-8")), [])
    return found


def test_the_core_imports_the_demo_only_at_its_entry_points():
    found = demo_imports()
    assert not {f for f in found if f[1] == ""}, "a module-level import of ground_r1.demo loads it on every run"
    unexpected = sorted(found - ENTRY_POINTS)
    assert not unexpected, f"ground_r1.demo imported outside the embedded-default entry points: {unexpected}"
    assert found == ENTRY_POINTS  # an entry point that no longer imports the demo leaves this list


def test_the_demo_docstrings_say_why_not_when():
    narration = [
        p.name
        for p in (PACKAGE / "demo").glob("*.py")
        if any(w in p.read_text(encoding="utf-8") for w in ("Session ", "session ", "(issue ", "issue 4"))
    ]
    assert not narration, f"demo modules narrating their history: {narration}"
