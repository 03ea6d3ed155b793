"""Error bars of evaluation numbers (issue 17; docs/metrics.md "Error bars").

Every number an evaluation table prints carries its item count and an uncertainty, from one of two estimators:

- :func:`mean_estimate`: a mean over independent items gets its standard error, ``s / sqrt(n)`` with the sample
  standard deviation (``ddof=1``), as lmms-eval's ``mean_stderr`` (lmms-eval 0.7.3, ``api/metrics.py``).
- :func:`bootstrap_estimate`: any other statistic (the MME total, an F1, a mean of group means such as the
  VisCoT AVG, a score over groups of items such as MMBench's CircularEval questions) gets the standard deviation of
  the statistic over :data:`BOOTSTRAP_RESAMPLES` seeded resamples of its *units*. A unit is an item, or a group of
  items that stand or fall together (MME's two questions of one image, whose acc+ needs both); the caller gives
  one row of numbers per unit, the statistic computed from such rows, and optionally strata (units are resampled
  within their stratum, so every task or sub-dataset keeps its size, as in the real benchmark).

A benchmark spec feeds either one (``BenchmarkSpec.estimate``): per-item values to the first, per-unit rows and a
statistic to the second. The seed is fixed (:data:`BOOTSTRAP_SEED`), so a table is reproducible to the digit.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable, Hashable, Sequence

import numpy as np

BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class Estimate:
    """A number with its uncertainty.

    Attributes:
        value: the statistic (None when there is nothing to compute it from).
        se: its standard error (None with fewer than two items or units).
        n: the items the number is computed over.
        method: "mean" (standard error of a mean over items) or "bootstrap".
        units: the resampled units (bootstrap; equals ``n`` when units are items).
        unit: what the units are, plural ("items", "images (each with its questions)", ...).
        resamples, seed: of the bootstrap (0 / None for "mean").
    """

    value: float | None
    se: float | None
    n: int
    method: str
    units: int = 0
    unit: str = "items"
    resamples: int = 0
    seed: int | None = None

    def cell(self, digits: int = 1, scale: float = 1.0) -> str:
        """``"81.7 ± 1.2"`` (``scale`` multiplies both, e.g. 100 for a fraction); "n/a" without a value."""
        if self.value is None:
            return "n/a"
        text = f"{self.value * scale:.{digits}f}"
        return text + (f" ± {self.se * scale:.{digits}f}" if self.se is not None else " ± n/a")

    def describe(self) -> str:
        if self.method == "mean":
            return f"standard error of the mean over {self.n} items"
        return (
            f"bootstrap standard error, {self.resamples} resamples (seed {self.seed}) over {self.units} "
            f"{self.unit}" + (f" ({self.n} items)" if self.unit != "items" else "")
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finite(values: Sequence[float | None]) -> np.ndarray:
    arr = np.asarray([float(v) for v in values if v is not None], dtype=float)
    return arr[np.isfinite(arr)]


def mean_estimate(values: Sequence[float | None]) -> Estimate:
    """The mean of ``values`` (None and non-finite values left out) and its standard error ``s / sqrt(n)``."""
    arr = _finite(values)
    n = int(arr.size)
    if n == 0:
        return Estimate(None, None, 0, "mean", 0)
    se = float(arr.std(ddof=1) / math.sqrt(n)) if n > 1 else None
    return Estimate(float(arr.mean()), se, n, "mean", n)


def _resample_indices(n: int, strata: Sequence[Hashable] | None, resamples: int, seed: int) -> np.ndarray:
    """[resamples, n] unit indices; with strata, each position draws from its own stratum (sizes kept)."""
    rng = np.random.default_rng(seed)
    if strata is None:
        return rng.integers(0, n, size=(resamples, n))
    labels = list(strata)
    if len(labels) != n:
        raise ValueError(f"strata has {len(labels)} labels for {n} units")
    out = np.empty((resamples, n), dtype=np.int64)
    groups: dict[Hashable, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(label, []).append(i)
    for members in groups.values():  # insertion order: deterministic for a given unit order
        idx = np.asarray(members)
        out[:, idx] = idx[rng.integers(0, idx.size, size=(resamples, idx.size))]
    return out


def bootstrap_estimate(
    unit_rows: Sequence[Sequence[float]] | np.ndarray,
    statistic: Callable[[np.ndarray], float],
    *,
    items: int | None = None,
    strata: Sequence[Hashable] | None = None,
    unit: str = "items",
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> Estimate:
    """``statistic(rows)`` and its bootstrap standard error over ``resamples`` resamples of the rows.

    ``unit_rows``: one row of numbers per unit; ``statistic`` maps a [units, k] array (the rows, or a resample of
    them in which row ``i`` always comes from row ``i``'s stratum) to a float. ``items``: the items behind the
    units (default: one per unit).
    """
    rows = np.asarray(unit_rows, dtype=float)
    if rows.ndim == 1:
        rows = rows[:, None]
    n_units = int(rows.shape[0])
    n_items = n_units if items is None else int(items)
    if n_units == 0:
        return Estimate(None, None, n_items, "bootstrap", 0, unit, resamples, seed)
    value = float(statistic(rows))
    if n_units < 2:
        return Estimate(value, None, n_items, "bootstrap", n_units, unit, resamples, seed)
    indices = _resample_indices(n_units, strata, resamples, seed)
    stats = np.fromiter((statistic(rows[idx]) for idx in indices), dtype=float, count=resamples)
    stats = stats[np.isfinite(stats)]
    se = float(stats.std(ddof=1)) if stats.size > 1 else None
    return Estimate(value, se, n_items, "bootstrap", n_units, unit, resamples, seed)


def mean_of_group_means(groups: Sequence[Hashable], values: Sequence[float]) -> Estimate:
    """The plain mean of per-group means (e.g. the VisCoT AVG over sub-datasets), bootstrapped over items within
    their group (each group keeps its size)."""
    labels = list(groups)
    order = {g: i for i, g in enumerate(dict.fromkeys(labels))}
    codes = np.asarray([order[g] for g in labels], dtype=np.int64)
    k = len(order)

    def statistic(rows: np.ndarray) -> float:
        sums = np.bincount(codes, weights=rows[:, 0], minlength=k)
        counts = np.bincount(codes, minlength=k)
        return float(np.mean(sums / counts))

    return bootstrap_estimate(
        np.asarray(values, dtype=float)[:, None], statistic, strata=labels, unit="items (resampled within their group)"
    )
