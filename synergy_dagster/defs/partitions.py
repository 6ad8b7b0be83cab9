"""Partitions: one dynamic key per distinct training set of a domain, ``<scenario>:<region>``
(e.g. ``local+far:8.3.5``). The plan asset registers exactly the sets it derives, so the UI never
shows a scenario x region cell that cannot exist, and identical sets appear once."""

from __future__ import annotations

import dagster as dg

from synergy_dagster.config import DOMAINS
from synergy_dagster.experiments.plan import parse_set_key

SET_PARTITIONS: dict[str, dg.DynamicPartitionsDefinition] = {
    d: dg.DynamicPartitionsDefinition(name=f"{d}_sets") for d in DOMAINS
}


def split_key(key: str) -> tuple[str, str]:
    """``"local+far:8.3.5"`` -> ``("local+far", "8.3.5")``; an unknown scenario is an InputError."""
    return parse_set_key(key)
