"""The every-region rule: when a statement that must hold in each region holds, fails or is
inconclusive.

One rule for two readers, so they cannot drift apart: the reproduction report's every-region
claims of the paper (:mod:`synergy_dagster.evaluation.report`, e.g. "global better in every
sub-region", Table 2) and the every-region verdicts of the spatial holdouts
(:mod:`synergy_dagster.evaluation.spatial`). Each region gets a status from its direction and its
p-value (:func:`region_status`); the regions together give the verdict (:func:`every_region_rule`).
Pure functions, free of Dagster.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from synergy_dagster.errors import InputError

__all__ = [
    "FAILS",
    "HOLDS",
    "INCONCLUSIVE",
    "NOT_HOLDS",
    "REGION_HOLDS",
    "every_region_rule",
    "region_status",
]

HOLDS, NOT_HOLDS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
# The status of one region (the verdict's words are for the whole statement).
REGION_HOLDS, FAILS = "holds", "fails"


def region_status(agree: bool, need_sig: bool, p: float, alpha: float) -> str:
    """One region of an every-region statement: ``holds`` (the stated direction, and p < alpha
    where significance is required), ``fails`` (reversed: significantly, or at all where only the
    direction is required) or ``inconclusive`` (the direction without the significance required,
    or a reversal that is not significant). A NaN ``p`` is not significant."""
    significant = not np.isnan(p) and p < alpha
    if agree and (significant or not need_sig):
        return REGION_HOLDS
    if not agree and (significant or not need_sig):
        return FAILS
    return INCONCLUSIVE


def every_region_rule(statuses: Iterable[str]) -> str:
    """The verdict of an every-region statement from its regions' :func:`region_status`: it
    **holds** when it holds in every region, **does not hold** when it fails in any region, and is
    **inconclusive** otherwise. A statement without a region has no verdict (an error)."""
    status = list(statuses)
    if not status:
        raise InputError("every-region rule", "no region to judge")
    unknown = sorted(set(status) - {REGION_HOLDS, FAILS, INCONCLUSIVE})
    if unknown:
        raise InputError("every-region rule", f"unknown region status(es) {unknown}")
    if all(s == REGION_HOLDS for s in status):
        return HOLDS
    if FAILS in status:
        return NOT_HOLDS
    return INCONCLUSIVE
