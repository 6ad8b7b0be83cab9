"""Shared fixtures. Real-data tests read ``$SYNERGY_REAL_DATA`` (set by .ci/run); on a laptop they
skip when the variable is unset, under ``CI`` (:func:`under_ci`) they fail instead, and they always
fail loudly when it points at a missing folder. ``synthetic_arrays``
builds small deterministic training :class:`Arrays` (:func:`make_arrays` is the same builder for
module-level helpers and subprocesses, which cannot take fixtures)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
import pytest

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from synergy_dagster.models.normalization import Arrays
    from synergy_dagster.store import StoreLocation

Target = Literal["smooth", "drift", "noise"]
# Per target: dynamic input names, static names, fraction of targets set to NaN.
_SHAPES: dict[str, tuple[tuple[str, ...], tuple[str, ...], float]] = {
    "smooth": (("a", "b"), ("k",), 0.2),
    "drift": (("a", "b", "d"), ("k", "m"), 0.1),
    "noise": (("p", "t"), ("k",), 0.0),
}


def make_arrays(
    n_sites: int = 10, n_days: int = 120, *, seed: int = 0, target: Target = "smooth", all_nan: bool = False
) -> Arrays:
    """Synthetic normalised arrays, identical for identical arguments (in any process).

    ``target`` picks how y depends on the inputs x and statics c:

    - ``smooth``: y = 2 * 5-day trailing mean of x0 + 0.5 * c0, 20 % NaN (learnable in a few epochs);
    - ``drift``: y = 0.1 * cumulative sum of x0 + c0, 10 % NaN (three inputs, two statics);
    - ``noise``: y independent standard normal, statics all 0, no NaN (for input checks).

    ``all_nan`` replaces every target value with NaN.
    """
    from synergy_dagster.models.normalization import Arrays

    dynamic, static, missing = _SHAPES[target]
    rng = np.random.default_rng(seed)
    size = (n_sites, n_days, 1)
    if target == "noise":
        # y is drawn before x (and not at all when all NaN): the order the bad-input cases were written in.
        y = np.full(size, np.nan, np.float32) if all_nan else rng.normal(size=size).astype(np.float32)
        x = rng.normal(size=(n_sites, n_days, len(dynamic))).astype(np.float32)
        c = np.zeros((n_sites, len(static)), np.float32)
        site_ids = np.array([chr(ord("a") + i) for i in range(n_sites)])
    else:
        x = rng.normal(size=(n_sites, n_days, len(dynamic))).astype(np.float32)
        c = rng.normal(size=(n_sites, len(static))).astype(np.float32)
        if target == "smooth":
            kernel = np.ones(5) / 5
            smooth = np.stack([np.convolve(x[i, :, 0], kernel)[:n_days] for i in range(n_sites)])
            y = (2.0 * smooth + 0.5 * c).astype(np.float32)[:, :, None]
        else:
            y = (0.1 * np.cumsum(x[:, :, :1], axis=1) + c[:, None, :1]).astype(np.float32)
        y[rng.random(y.shape) < missing] = np.nan
        if all_nan:
            y[:] = np.nan
        site_ids = np.array([f"s{i}" for i in range(n_sites)])
    return Arrays(
        x=x, c=c, y=y, site_ids=site_ids, time=pd.date_range("2000-01-01", periods=n_days),
        dynamic_names=dynamic, static_names=static, target_name="y",
    )  # fmt: skip


@pytest.fixture
def synthetic_arrays() -> Callable[..., Arrays]:
    """The :func:`make_arrays` builder: ``synthetic_arrays(n_sites, n_days, seed=, target=, all_nan=)``."""
    return make_arrays


def under_ci() -> bool:
    """True when the environment variable ``CI`` is set to anything but empty, ``0`` or ``false``
    (.ci/run sets ``CI=1``; hosted CI services set ``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def real_data() -> Path:
    value = os.environ.get("SYNERGY_REAL_DATA")
    if not value:
        if under_ci():
            # A CI without the data would otherwise be green with every real-data test skipped.
            pytest.fail("SYNERGY_REAL_DATA is not set under CI: the real-data tests must run there")
        pytest.skip("SYNERGY_REAL_DATA is not set")
    path = Path(value).resolve()
    if not path.is_dir():
        pytest.fail(f"SYNERGY_REAL_DATA={value} is not a folder")
    return path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Every test that needs the real data (directly or through another fixture) is `real`, so
    # `-m real` / `-m "not real"` need no marker kept in sync by hand.
    for item in items:
        if "real_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.real)


def pytest_configure(config: pytest.Config) -> None:
    # Two xdist workers share two cores: one torch thread each avoids OpenMP spin-wait contention.
    os.environ.setdefault("SYNERGY_TORCH_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def drawn_figures(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """Every matplotlib Figure that :mod:`synergy_dagster.evaluation.figures` renders during the
    test, in order, so tests read axes, artists, labels and limits instead of PNG bytes (the PNG
    is still rendered and returned as usual)."""
    from synergy_dagster.evaluation import figures

    drawn: list[Figure] = []
    render = figures._render

    def keep(fig: Figure, path: str | Path | None) -> bytes:
        drawn.append(fig)
        return render(fig, path)

    monkeypatch.setattr(figures, "_render", keep)
    return drawn


@pytest.fixture(params=["duckdb", "ducklake-file", "ducklake-postgres"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreLocation]:
    """A new, empty metadata store of each backend in turn (``stores.py``): the DuckDB file,
    DuckLake on a DuckDB-file catalog, DuckLake on PostgreSQL (needs ``SYNERGY_TEST_PG_DSN``)."""
    from synergy_dagster_tests.stores import store_location

    with store_location(request.param, tmp_path) as location:
        yield location
