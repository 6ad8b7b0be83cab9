"""Partitions: one dynamic key per distinct training set of a domain, ``<scenario>:<region>``
(e.g. ``local+far:8.3.5``). The plan asset registers exactly the sets it derives, so the UI never
shows a scenario x region cell that cannot exist, and identical sets appear once."""

from __future__ import annotations

import dagster as dg

from synergy_dagster.config import DOMAINS

SET_PARTITIONS: dict[str, dg.DynamicPartitionsDefinition] = {
    d: dg.DynamicPartitionsDefinition(name=f"{d}_sets") for d in DOMAINS
}
