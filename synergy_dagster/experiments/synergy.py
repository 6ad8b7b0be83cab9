"""Synergy curves: which training sets a curve of skill against added data needs.

For each region of interest (ROI) and each pool of candidate sites (``close``: the rest of the
ROI's Level II region; ``far``: its Level I region outside that Level II region; ``dissimilar``:
every site outside its Level I region; the pools of :func:`~synergy_dagster.experiments.plan.build_plan`)
a curve adds ``k`` sites of the pool to the ROI's own sites, for ``k`` on a grid:

- ``k = 0`` (the local set) and every grid value below the ROI's *smallest* non-empty pool
  ``n_min``, plus ``n_min`` itself (the size-controlled point), so every pool is drawn at the same
  ``k`` and the curves are comparable; and ``all`` (the whole pool, the paper's unsized set);
- ``draws`` independent draw sequences per pool: draw ``d`` permutes the sorted pool with
  ``np.random.default_rng(stable_seed(seed, "curve:<roi>:<pool>:<d>"))`` and takes its first ``k``
  ids, so the sets of one draw are **nested** (the set at ``k`` contains the one at every smaller
  ``k``) and identical on every machine. ``k = 0`` and ``all`` do not depend on the draw: one set
  (draw 0) each.

Set keys are partition keys ``curve+<pool>@<k>_d<draw>:<roi>`` (``curve+far@20_d1:8.3.5``,
``curve+close@all_d0:8.3.5``): their scenario never equals a plan scenario, and ``...`` (which
Dagster refuses in a partition key) cannot occur. Sets with the site list of an existing set (``k
= 0`` is ``local:<roi>``, ``all`` is ``local+<pool>:<roi>``) are trained once through the plan's
``trained_as``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from synergy_dagster.experiments.size_control import stable_seed
from synergy_dagster.study_file import StudyFile, SynergyCurvesSpec

CURVE_EXPERIMENT = "synergy_curve"
POOLS = ("close", "far", "dissimilar")
DEFAULT_GRID = (5, 10, 20, 40, 80, 160, 320, 640, 1280)
ALL = "all"
_SCENARIO = re.compile(r"^curve\+(close|far|dissimilar)@(\d+|all)_d(\d+)$")


# The study file's ``synergy_curves`` block is the curves' configuration: declared once, in the schema.
CurveConfig = SynergyCurvesSpec


def curves_of(study: StudyFile) -> CurveConfig | None:
    """The study's curve settings, or None when its block is absent or not enabled."""
    spec = study.synergy_curves
    return spec if spec is not None and spec.enabled else None


def curve_scenario(pool: str, k: int | str, draw: int) -> str:
    """``("far", 20, 1)`` -> ``"curve+far@20_d1"`` (``k`` an int or ``"all"``)."""
    return f"curve+{pool}@{k}_d{int(draw)}"


def parse_curve_scenario(scenario: str) -> tuple[str, int | None, int] | None:
    """``"curve+far@20_d1"`` -> ``("far", 20, 1)``; ``k`` None for ``all``; None if not a curve."""
    m = _SCENARIO.match(str(scenario))
    if m is None:
        return None
    return m.group(1), None if m.group(2) == ALL else int(m.group(2)), int(m.group(3))


def curve_grid(n_min: int, grid: Sequence[int]) -> tuple[int, ...]:
    """0, the grid values below ``n_min`` and ``n_min`` itself (see module docstring)."""
    if n_min < 1:
        return ()
    return (0, *sorted({int(k) for k in grid if 0 < k < n_min}), int(n_min))


def draw_order(pool_ids: Sequence[str], seed: int, roi: str, pool: str, draw: int) -> tuple[str, ...]:
    """The order in which draw ``draw`` adds the pool's sites: a seeded permutation of the sorted
    ids; its first ``k`` ids are the draw's set at ``k`` (hence nested)."""
    ids = np.array(sorted({str(s) for s in pool_ids}), dtype=object)
    rng = np.random.default_rng(stable_seed(seed, f"curve:{roi}:{pool}:{int(draw)}"))
    return tuple(ids[rng.permutation(len(ids))].tolist())


@dataclass(frozen=True)
class CurveSet:
    scenario: str
    site_ids: tuple[str, ...]
    rule: str


def curve_sets(
    roi: str, roi_ids: Sequence[str], added: Mapping[str, Sequence[str]], cfg: CurveConfig
) -> tuple[list[CurveSet], list[tuple[str, str]]]:
    """The curve sets of one ROI and the pools left out with their reason.

    ``added`` maps the plan's scenarios (``local+close``, ...) or the bare pool names to the pool's
    site ids. A pool without sites has no curve; ``n_min`` is the smallest of the others."""
    if cfg.rois is not None and roi not in cfg.rois:
        return [], []
    pools = {p: list(added.get(f"local+{p}", added.get(p, ()))) for p in cfg.pools}
    skipped = [(p, "the pool adds no sites to the ROI") for p, ids in pools.items() if not ids]
    sizes = [len(set(ids)) for ids in pools.values() if ids]
    if not sizes:
        return [], skipped
    ks = curve_grid(min(sizes), cfg.grid)
    own = [str(s) for s in roi_ids]
    out: list[CurveSet] = []
    for pool, ids in pools.items():
        if not ids:
            continue
        n = len(set(ids))
        for draw in range(cfg.draws):
            order = draw_order(ids, cfg.seed, roi, pool, draw)
            for k in ks:
                if k == 0 and draw > 0:
                    continue  # the local set: the same for every draw
                rule = (
                    f"curve {pool} draw {draw}: first {k} of {n} pool sites in the order "
                    f"np.random.default_rng(stable_seed({cfg.seed}, 'curve:{roi}:{pool}:{draw}'))"
                    f".permutation(sorted ids)"
                )
                out.append(CurveSet(curve_scenario(pool, k, draw), tuple(own + list(order[:k])), rule))
        out.append(CurveSet(curve_scenario(pool, ALL, 0), tuple(own + list(ids)), f"curve {pool}: all {n}"))
    return out, skipped
