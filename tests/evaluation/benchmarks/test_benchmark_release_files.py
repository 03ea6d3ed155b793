"""Loading the real release-format samples (shared/data/release-format) and malformed files."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from ground_r1.evaluation.benchmarks import BenchmarkFileError, get_benchmark, list_benchmarks

SAMPLE_COUNTS = {
    "MME": 28, "POPE": 9, "SEED_Bench": 9, "MMBench_en_dev": 20, "MMMU_val": 6,
    "MMVet": 16, "RealworldQA": 6, "MME_RealWorld_Lite": 5,
}  # fmt: skip


def _sample(release_format_dir: Path, name: str) -> Path:
    return release_format_dir / f"{name}.sample.jsonl"


def _with_images(release_format_dir: Path, name: str, root: Path, make) -> Path:
    """Create a placeholder for every `Image` of a sample under ``root`` (SEED ids get ".jpg")."""
    path = _sample(release_format_dir, name)
    for line in path.read_text(encoding="utf-8").splitlines():
        image = json.loads(line)["Image"]
        target = root / image
        make(target if target.suffix else target.with_name(target.name + ".jpg"))
    return path


@pytest.mark.parametrize("name", sorted(SAMPLE_COUNTS))
def test_every_sample_loads_with_images_checked(release_format_dir, tmp_path, placeholder_image, name) -> None:
    spec = get_benchmark(name)
    path = _with_images(release_format_dir, name, tmp_path, placeholder_image)
    items = spec.load(path, tmp_path)
    assert len(items) == SAMPLE_COUNTS[name]
    assert len({it.key for it in items}) == len(items)  # unique although ids repeat
    assert items[0].key == f"{path.name}:1"
    assert all(Path(it.image).is_file() for it in items)
    assert all(spec.direct_prompt(it).startswith(spec.question(it).rstrip()) for it in items)


def test_registry_covers_every_sample_file(release_format_dir) -> None:
    stems = {p.name.removesuffix(".sample.jsonl") for p in release_format_dir.glob("*.sample.jsonl")}
    general = stems - {"visualCoT_eval_subset150_choice", "RefCOCO_eval_subset_1000"}
    assert general == set(list_benchmarks())


def test_mme_sample_pairs_by_image(release_format_dir, tmp_path) -> None:
    items = get_benchmark("MME").load(_sample(release_format_dir, "MME"), tmp_path, check_images=False)
    groups = Counter(it.extra["image_group"] for it in items)
    assert len(groups) == 14 and set(groups.values()) == {2}
    # one Yes and one No per image, and all 14 tasks present
    answers: dict[str, list[str]] = {}
    for it in items:
        answers.setdefault(it.extra["image_group"], []).append(it.answer)
    assert all(sorted(a) == ["No", "Yes"] for a in answers.values())
    assert len({it.category for it in items}) == 14
    # "count" and "existence" show the same file name in different folders: separate groups
    assert "count/images/count/000000006040.jpg" in groups
    assert "existence/images/existence/000000006040.jpg" in groups
    assert items[0].question.endswith("Please answer yes or no.")


def test_pope_sample_splits(release_format_dir, tmp_path) -> None:
    items = get_benchmark("POPE").load(_sample(release_format_dir, "POPE"), tmp_path, check_images=False)
    assert Counter(it.category for it in items) == {"adversarial": 3, "popular": 3, "random": 3}
    assert Counter(it.extra["Question_id"] for it in items) == {"1": 3, "2": 3, "3": 3}  # ids repeat


def test_mmvet_sample_and_or_answers(release_format_dir, tmp_path) -> None:
    items = get_benchmark("MMVet").load(_sample(release_format_dir, "MMVet"), tmp_path, check_images=False)
    by_id = {it.extra["Question_id"]: it for it in items}
    assert by_id["v1_0"].extra["answer_elements"] == {"mode": "and", "elements": ["-1", "-5"]}
    assert by_id["v1_3"].extra["answer_elements"] == {"mode": "or", "elements": ["12", "=12"]}
    assert by_id["v1_79"].extra["answer_elements"] == {"mode": "or", "elements": ["five", "5"]}
    assert by_id["v1_8"].extra["capabilities"] == ["rec", "ocr", "spat", "math"]
    modes = Counter(it.extra["answer_elements"]["mode"] for it in items)
    assert modes == {"single": 11, "or": 4, "and": 1}


def test_seed_ids_without_extension(release_format_dir, tmp_path, placeholder_image) -> None:
    spec = get_benchmark("SEED_Bench")
    path = _sample(release_format_dir, "SEED_Bench")
    # Nothing on disk and no check: the SEED-Bench default ".jpg" is assumed.
    items = spec.load(path, tmp_path, check_images=False)
    assert items[0].image == str(tmp_path / "1454426_2591111986.jpg")
    # On disk with another extension: found by trying the known ones.
    placeholder_image(tmp_path / "1454426_2591111986.png")
    items = spec.load(path, tmp_path, check_images=False)
    assert items[0].image == str(tmp_path / "1454426_2591111986.png")
    # Checked and missing: one problem per line, naming what was tried.
    with pytest.raises(BenchmarkFileError) as err:
        spec.load(path, tmp_path)
    assert len(err.value.problems) == 8  # 9 items, the first one now exists
    assert err.value.problems[0].startswith(f"{path}:2: Image: image not found: {tmp_path / '1307737_3736205576'}")
    assert "also tried .jpg, .jpeg, .png" in err.value.problems[0]


def test_mmmu_sample_single_image_markers(release_format_dir, tmp_path) -> None:
    items = get_benchmark("MMMU_val").load(_sample(release_format_dir, "MMMU_val"), tmp_path, check_images=False)
    assert all(it.extra["image_markers"] == [1] for it in items)
    assert all(isinstance(it.image, str) for it in items)
    assert [len(it.extra["options"]) for it in items] == [4, 4, 4, 3, 4, 4]  # one 3-option question


def test_mme_rwl_sample_options(release_format_dir, tmp_path) -> None:
    spec = get_benchmark("MME_RealWorld_Lite")
    items = spec.load(_sample(release_format_dir, "MME_RealWorld_Lite"), tmp_path, check_images=False)
    assert all(list(it.extra["options"]) == list("ABCDE") for it in items)
    assert items[3].extra["options"]["E"] == "The image does not feature the vans"
    assert spec.direct_prompt(items[0]).endswith("\nRespond with only the letter (A, B, C, D, or E).")


def test_mmbench_sample_hints_and_nan(release_format_dir, tmp_path) -> None:
    spec = get_benchmark("MMBench_en_dev")
    items = spec.load(_sample(release_format_dir, "MMBench_en_dev"), tmp_path, check_images=False)
    assert all("nan" not in it.extra["options"].values() for it in items)
    assert all("\nC. nan" not in it.question for it in items)
    spatula = next(it for it in items if it.extra["Question_id"] == 293)  # hint "nan"
    assert spatula.question == "Which material is this spatula made of?\nA. rubber\nB. cotton"
    assert items[0].question.startswith("Hint: The passage below describes an experiment.")
    assert Counter(len(it.extra["options"]) for it in items) == {2: 10, 3: 3, 4: 7}


def test_realworldqa_sample_types(release_format_dir, tmp_path) -> None:
    items = get_benchmark("RealworldQA").load(_sample(release_format_dir, "RealworldQA"), tmp_path, check_images=False)
    assert [it.category for it in items] == ["multiple_choice", "free_form"] * 3


def test_malformed_file_lists_every_problem(write_benchmark) -> None:
    good = {"Image": "a.png", "dataset": "existence", "problem": "Is it? Please answer yes or no.",
            "solution": "Yes", "problem_id": 1}  # fmt: skip
    no_solution = {k: v for k, v in good.items() if k != "solution"}
    path, root = write_benchmark(
        "MME.jsonl",
        [good, no_solution, "{not json", dict(good, dataset="smell"), dict(good, solution="Maybe"), "[1, 2]"],
    )
    with pytest.raises(BenchmarkFileError) as err:
        get_benchmark("MME").load(path, root)
    problems = err.value.problems
    assert problems[0] == f"{path}:2: solution: missing field"
    assert problems[1].startswith(f"{path}:3: json: invalid JSON")
    assert problems[2].startswith(f"{path}:4: dataset: unknown MME task 'smell'")
    assert problems[3] == f"{path}:5: solution: expected Yes or No, got 'Maybe'"
    assert problems[4] == f"{path}:6: record: expected a JSON object, got list"
    assert len(problems) == 5
    assert f"5 problem(s) in {path}" in str(err.value)
    # Read (what evaluation does): the good record is evaluated, the 5 others skipped and named.
    read = get_benchmark("MME").read(path, root)
    assert ([it.line for it in read.items], read.records_read, read.skipped_records) == ([1], 6, 5)
    assert [str(i) for i in read.skipped] == problems


def test_missing_image_field_and_missing_file(write_benchmark, tmp_path) -> None:
    path, root = write_benchmark(
        "POPE.jsonl", [{"problem": "Is there a dog?", "solution": "yes", "Category": "random"}]
    )
    with pytest.raises(BenchmarkFileError, match=r"POPE.jsonl:1: Image: missing field"):
        get_benchmark("POPE").load(path, root)
    with pytest.raises(FileNotFoundError, match=r"expected the release's 'POPE.jsonl'"):
        get_benchmark("POPE").load(tmp_path / "nope.jsonl", root)


def test_a_folder_path_finds_the_release_file_name(write_benchmark, tmp_path) -> None:
    record = {
        "Question_id": "1",
        "Image": "p.png",
        "problem": "Is there a dog?",
        "solution": "yes",
        "Category": "random",
    }
    path, root = write_benchmark("POPE.jsonl", [record])
    items = get_benchmark("POPE").load(tmp_path, root)  # the folder holding POPE.jsonl
    assert [it.key for it in items] == ["POPE.jsonl:1"]
