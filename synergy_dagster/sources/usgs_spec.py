"""How a study uses the USGS approval status and qualifiers of its streamflow days.

``domains.streamflow.usgs`` in the study file. Streamflow that arrived through the Water Data
feed carries, per day, an approval status (Approved / Provisional) and qualifiers (estimated, ice,
equipment...), kept as the flag variable of the streamflow source
(:mod:`synergy_dagster.sources.usgs_flags`). This block says which of those days a study scores
and which it trains on (the masks: :mod:`synergy_dagster.sources.usgs_masks`), and whether the
test period follows the newest data (:mod:`synergy_dagster.sources.usgs_latest`).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from synergy_dagster.config import Settings


class UsgsSpec(Settings):
    """Which streamflow days, by USGS approval status and qualifier, a study evaluates and trains on."""

    _where: ClassVar[str] = "usgs"

    evaluate: Literal["all", "approved"] = Field(
        "all",
        description=(
            "Which observed days of the test period are scored: 'all' (default, every finite "
            "value, as the paper did) or 'approved': days whose value came through the USGS feed "
            "and is not Approved (Provisional, or a landed file that carries no status) are "
            "masked before the metrics, so skill is not judged against values USGS may still "
            "revise. Days from the reader's archive (CAMELS, Caravan: published, approved "
            "records) count as approved. Soil moisture has no such flags: no effect there."
        ),
    )
    train: Literal["all", "exclude_estimated"] = Field(
        "all",
        description=(
            "Which observed days of the training period are fitted: 'all' (default, the paper's "
            "rule) or 'exclude_estimated': days the USGS marks as estimated or with any other "
            "qualifier (ice, equipment failure...) are masked in the training target (and in "
            "the held-out validation days carved from it), so the models do not learn from "
            "values that were not measured. Inputs are not changed; the models still see every day."
        ),
    )
    test_end: Literal["fixed", "latest"] = Field(
        "fixed",
        description=(
            "Where the test period ends: 'fixed' (default) at periods.test.end as written, or "
            "'latest': at the newest day on which some kept site has both its streamflow and every "
            "dynamic input (the forcing) in the tagged sites, never before the written end. "
            "Resolved with the study at the start of each run, so each scheduled refresh that "
            "brings new days extends the evaluation (and the skill per water year) to them."
        ),
    )
