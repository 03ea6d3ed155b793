"""The benchmark registry: names, aliases, helpful errors."""

from __future__ import annotations

import pytest

from ground_r1.evaluation.benchmarks import (
    BenchmarkSpec,
    UnknownBenchmarkError,
    get_benchmark,
    list_benchmarks,
    register_benchmark,
)


def test_all_release_benchmarks_are_registered() -> None:
    assert list_benchmarks() == [
        "MME", "POPE", "SEED_Bench", "MMBench_en_dev", "MMMU_val", "MME_RealWorld_Lite", "RealworldQA", "MMVet",
    ]  # fmt: skip
    for name in list_benchmarks():
        spec = get_benchmark(name)
        assert spec.name == name
        assert spec.default_file == f"{name}.jsonl"
        assert spec.version


@pytest.mark.parametrize(
    ("alias", "name"),
    [("mme_realworld_lite", "MME_RealWorld_Lite"), ("mme-rwl", "MME_RealWorld_Lite"),
     ("MME RealWorld Lite", "MME_RealWorld_Lite"), ("seed", "SEED_Bench"), ("Seed-Bench", "SEED_Bench"),
     ("mmbench", "MMBench_en_dev"), ("mmmu", "MMMU_val"), ("mm-vet", "MMVet"), ("realworldqa", "RealworldQA"),
     ("pope", "POPE"), ("mme", "MME")],
)  # fmt: skip
def test_aliases_are_case_and_punctuation_insensitive(alias: str, name: str) -> None:
    assert get_benchmark(alias).name == name


def test_unknown_name_lists_valid_names_and_suggests() -> None:
    with pytest.raises(UnknownBenchmarkError) as err:
        get_benchmark("mme-rwll")
    message = str(err.value)
    assert "did you mean 'MME_RealWorld_Lite'?" in message
    assert "POPE" in message and "MMVet" in message
    with pytest.raises(UnknownBenchmarkError, match="Valid names"):
        get_benchmark("zzzzzz")


def test_register_refuses_a_taken_alias() -> None:
    with pytest.raises(ValueError, match="already belongs to 'MME_RealWorld_Lite'"):
        register_benchmark(BenchmarkSpec(name="Other", version="1", default_file="o.jsonl", aliases=("MME-RWL",)))
    assert "Other" not in list_benchmarks()
