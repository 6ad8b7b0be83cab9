"""Seeded, recorded rule that draws the same number of added sites for each size-controlled set.

Rule: sort the candidate ids; permute them with ``np.random.default_rng(seed)`` where ``seed`` is the
first 8 bytes of sha256("<size_control_seed>:<roi>") read as an unsigned integer (stable across
Python runs, unlike ``hash``); take the ``k`` evenly spaced positions floor(i * n / k),
i = 0..k-1, of the permutation; return the picks sorted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from synergy_dagster.errors import InputError


def stable_seed(seed: int, roi: str) -> int:
    """Seed derived from the configured seed and the ROI code; identical on every machine."""
    digest = hashlib.sha256(f"{int(seed)}:{roi}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def pick_added(candidates: Sequence[str], k: int, seed: int, roi: str) -> tuple[str, ...]:
    """Draw ``k`` of ``candidates`` by the module's rule; the result is sorted."""
    pool = np.array(sorted({str(c) for c in candidates}), dtype=object)
    n = len(pool)
    if not 0 <= k <= n:
        raise InputError("size control", f"cannot pick {k} of {n} candidate sites", roi)
    if k == 0:
        return ()
    perm = np.random.default_rng(stable_seed(seed, roi)).permutation(n)
    positions = (np.arange(k) * n) // k
    return tuple(sorted(pool[perm[positions]].tolist()))


def rule_text(seed: int, roi: str, n_candidates: int, k: int) -> str:
    """Human-readable record of one draw, stored in the plan's ``added_rule`` column."""
    return (
        f"added {k} of {n_candidates} candidate sites: sorted ids permuted by "
        f"np.random.default_rng(sha256('{int(seed)}:{roi}')[:8] little-endian = {stable_seed(seed, roi)}), "
        f"evenly spaced positions floor(i*{n_candidates}/{k}) for i=0..{k - 1}"
    )
