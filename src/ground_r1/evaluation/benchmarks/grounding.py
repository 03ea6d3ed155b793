"""What VisCoT's and RefCOCO's specs share: a benchmark of the release's one file, read by its own record reader into
inference items (SPEC §6 validation, image paths rewritten by ``--image_path_prefix`` / ``--image_root``), scored from
its predictions alone (every field a score needs is copied into the prediction record)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ground_r1.evaluation.benchmarks.spec import BenchmarkSpec

if TYPE_CHECKING:
    from ground_r1.evaluation.benchmark_run import BenchmarkData
    from ground_r1.evaluation.inference import EvalItem

__all__ = ["GroundingSpec", "left_out_count"]


def left_out_count(data: "BenchmarkData | None", predictions: list[dict[str, Any]]) -> int:
    """Items a summary row leaves out: prediction errors and items without a prediction (no data read: none missing
    that can be named)."""
    done = {str(p["key"]) for p in predictions}
    errors = sum(1 for p in predictions if p.get("status") != "ok")
    return errors + sum(1 for item in (data.items if data is not None else ()) if item.key not in done)


@dataclass(frozen=True)
class GroundingSpec(BenchmarkSpec):
    """Base of the grounding suite's specs (VisCoT, RefCOCO): its reader makes the inference items itself."""

    suite: str = "grounding"

    required_fields: ClassVar[tuple[str, ...]] = ()  # the record reader validates (ground_r1.data.records)
    scores_from_predictions: ClassVar[bool] = True

    def locate(self, dataset_root: str | Path, image_root: str | Path | None = None) -> tuple[Path, Path]:
        """``DATASET_ROOT/{default_file}``; images under ``image_root`` (the folder the release's absolute paths are
        rewritten to), else the file's folder."""
        file = self.resolve_file(dataset_root)
        return file, Path(image_root).expanduser() if image_root is not None else file.resolve().parent

    def locate_data(
        self, data_path: str | Path | None, dataset_root: str | Path | None, image_root: str | Path | None
    ) -> tuple[Path, Path]:
        if data_path is None:
            return self.locate(dataset_root if dataset_root is not None else ".", image_root)
        file = Path(data_path)  # read as given: the record reader names a missing file
        return file, Path(image_root) if image_root is not None else file.resolve().parent

    def eval_items(self, data: "BenchmarkData", protocol: str) -> list["EvalItem"]:
        return list(data.items)  # the question as the file poses it; each protocol's engine wraps it
