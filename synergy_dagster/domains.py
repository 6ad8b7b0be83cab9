"""The two domains of the study, one record each: what differs between soil moisture and streamflow.

Every per-domain constant of the science lives here (readers, headline metric, the paper's report
metrics and regions of interest, revisit interval, tagging method, normalisation), so a third
domain is one record, not a hunt for dicts spread over the packages.
"""

from __future__ import annotations

from dataclasses import dataclass

from synergy_dagster.errors import ConfigError


@dataclass(frozen=True)
class Domain:
    """What the pipeline needs to know of one domain."""

    name: str
    readers: tuple[str, ...]  # the study-file readers that feed it
    headline_metric: (
        str  # the paper's headline (lower-is-better rmse or higher-is-better nse); budget.metric auto
    )
    paper_metrics: tuple[str, ...]  # the metrics the paper reports for it (reproduction report, figures)
    paper_rois: tuple[str, ...]  # the paper's Level III regions of interest (similarity experiments)
    revisit_days: int  # observation interval: coverage judges each day against this window
    tagging_method: str  # how a site without a polygon gets its ecoregion (centroid / gauge point)
    normalization: str  # default statistics of the inputs (zscore / p10p90)
    marker: str  # its marker in the figures


DOMAIN_RECORDS: dict[str, Domain] = {
    "soil_moisture": Domain(
        name="soil_moisture",
        readers=("pixel_cube",),
        headline_metric="rmse",
        paper_metrics=("rmse", "corr"),
        paper_rois=("8.3.5", "9.3.3", "9.4.1", "9.4.2", "10.1.5", "10.2.4"),
        revisit_days=3,  # SMAP passes every 2-3 days
        tagging_method="centroid",
        normalization="zscore",
        marker="s",
    ),
    "streamflow": Domain(
        name="streamflow",
        readers=("caravan", "camels_us"),
        headline_metric="nse",
        paper_metrics=("corr", "nse"),
        paper_rois=(
            "5.3.1",
            "8.1.7",
            "8.2.3",
            "8.2.4",
            "8.3.1",
            "8.3.4",
            "8.3.5",
            "8.4.1",
            "8.4.2",
            "8.5.3",
            "9.2.3",
            "9.4.2",
        ),  # fmt: skip
        revisit_days=1,  # gauges report daily means
        tagging_method="gauge_point",
        normalization="p10p90",
        marker="o",
    ),
}
DOMAINS: tuple[str, ...] = tuple(DOMAIN_RECORDS)
# Which domain each study-file reader feeds.
READER_DOMAINS: dict[str, str] = {r: d.name for d in DOMAIN_RECORDS.values() for r in d.readers}


def domain_record(name: str) -> Domain:
    """The record of domain ``name``; an unknown name is a ConfigError listing the known ones."""
    if name not in DOMAIN_RECORDS:
        raise ConfigError("domain", f"unknown domain {name!r}; expected one of {DOMAINS}")
    return DOMAIN_RECORDS[name]
