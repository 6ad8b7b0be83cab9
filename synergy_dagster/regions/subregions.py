"""The paper's 18 sub-regions A-R (Fang et al. 2022, Table 1) as data, and the mapping from EPA codes.

Ecoregions 8, 9 and 10 are split by their Level II regions, 14 and 15 are merged, the rest are whole
Level I regions. Names are the EPA names of the constituent regions (Table 1 lists codes only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class SubRegion:
    """One sub-region: ``codes`` are EPA Level I codes ("5") or Level II codes ("8.3")."""

    letter: str
    codes: tuple[str, ...]
    name: str


SUBREGIONS: tuple[SubRegion, ...] = (
    SubRegion("A", ("5",), "Northern Forests"),
    SubRegion("B", ("6",), "Northwestern Forested Mountains"),
    SubRegion("C", ("7",), "Marine West Coast Forest"),
    SubRegion("D", ("8.1",), "Mixed Wood Plains"),
    SubRegion("E", ("8.2",), "Central USA Plains"),
    SubRegion("F", ("8.3",), "Southeastern USA Plains"),
    SubRegion("G", ("8.4",), "Ozark/Ouachita-Appalachian Forests"),
    SubRegion("H", ("8.5",), "Mississippi Alluvial and Southeast USA Coastal Plains"),
    SubRegion("I", ("9.2",), "Temperate Prairies"),
    SubRegion("J", ("9.3",), "West-Central Semi-Arid Prairies"),
    SubRegion("K", ("9.4",), "South Central Semi-Arid Prairies"),
    SubRegion("L", ("9.5", "9.6"), "Texas-Louisiana Coastal Plain and Tamaulipas-Texas Semiarid Plain"),
    SubRegion("M", ("10.1",), "Cold Deserts"),
    SubRegion("N", ("10.2",), "Warm Deserts"),
    SubRegion("O", ("11.1",), "Mediterranean California"),
    SubRegion("P", ("12.1",), "Western Sierra Madre Piedmont"),
    SubRegion("Q", ("13",), "Temperate Sierras"),
    SubRegion("R", ("14", "15"), "Tropical Dry Forests and Tropical Wet Forests"),
)

LETTERS: tuple[str, ...] = tuple(s.letter for s in SUBREGIONS)
BY_LETTER: dict[str, SubRegion] = {s.letter: s for s in SUBREGIONS}

# Level II codes are looked up first: a Level II entry is more specific than a Level I one.
_BY_L2: dict[str, str] = {c: s.letter for s in SUBREGIONS for c in s.codes if "." in c}
_BY_L1: dict[str, str] = {c: s.letter for s in SUBREGIONS for c in s.codes if "." not in c}


def _norm_code(code: object) -> str | None:
    """Codes as strings ("8", "8.3"); None/NaN -> None. Integer-valued floats (8.0) become "8"."""
    if code is None:
        return None
    if isinstance(code, float | np.floating):
        if not np.isfinite(code):
            return None
        if float(code).is_integer():
            return str(int(code))
    text = str(code).strip()
    return text or None


def subregion_of(l1: object, l2: object) -> str | None:
    """Letter of the sub-region holding Level I ``l1`` / Level II ``l2``; None if none does."""
    c2, c1 = _norm_code(l2), _norm_code(l1)
    if c2 is not None and c2 in _BY_L2:
        return _BY_L2[c2]
    if c1 is not None and c1 in _BY_L1:
        return _BY_L1[c1]
    return None


def subregions_of(l1: pd.Series | np.ndarray | list, l2: pd.Series | np.ndarray | list) -> np.ndarray:
    """Vectorised :func:`subregion_of`: an object array of letters (None where no sub-region)."""
    s1 = pd.Series(np.asarray(l1, dtype=object)).map(_norm_code)
    s2 = pd.Series(np.asarray(l2, dtype=object)).map(_norm_code)
    if len(s1) != len(s2):
        raise ValueError(f"l1 and l2 differ in length ({len(s1)} vs {len(s2)})")
    by2 = s2.map(_BY_L2)
    by1 = s1.map(_BY_L1)
    arr = by2.where(by2.notna(), by1).to_numpy(dtype=object)
    arr[pd.isna(arr)] = None  # None, not NaN: callers compare letters with ``==``
    return arr
