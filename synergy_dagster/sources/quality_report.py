"""The quality report of one source: counts per rule, the worst sites, and every finding, as the
asset metadata, the Markdown shown in the UI, the CSV file beside the sources and the store rows
(table ``quality_events``).

The Markdown tables are drawn by the caller's ``table`` function (the UI layer's
``markdown_table``): the sources layer does not import the evaluation's formatting."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from synergy_dagster.sources.quality import EVENT_COLUMNS, RULES
from synergy_dagster.sources.quality_spec import QualitySpec

# Findings listed one by one in the UI report; the CSV beside the sources and the store hold all.
REPORT_ROWS = 500


def counts_per_rule(events: pd.DataFrame) -> pd.DataFrame:
    """One row per rule that found something: its class, the action taken, findings and sites."""
    if not len(events):
        return pd.DataFrame(columns=["rule", "class", "action", "findings", "sites"])
    return (
        events.groupby(["rule", "class", "action"], sort=True)
        .agg(findings=("site", "size"), sites=("site", "nunique"))
        .reset_index()
    )


def worst_sites(events: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The ``n`` sites with the most findings, with the rules that found them."""
    if not len(events):
        return pd.DataFrame(columns=["site", "findings", "rules"])
    per = events.groupby("site").agg(
        findings=("rule", "size"), rules=("rule", lambda r: ", ".join(sorted(set(r))))
    )
    return per.sort_values(["findings"], ascending=False, kind="stable").head(n).reset_index()


def _listing(events: pd.DataFrame) -> pd.DataFrame:
    """The findings as a readable table: the file by name, dates as days."""
    out = events.copy()
    out["file"] = out["file"].map(lambda f: Path(str(f)).name)
    out["date"] = pd.to_datetime(out["date"]).dt.strftime("%Y-%m-%d").fillna("")
    out["value"] = out["value"].map(lambda v: "" if pd.isna(v) else f"{float(v):.6g}")
    return out[list(EVENT_COLUMNS)]


def quality_markdown(
    domain: str,
    events: pd.DataFrame,
    dropped: pd.DataFrame,
    quality: QualitySpec,
    csv_path: Path | str,
    table: Callable[[pd.DataFrame], str],
) -> str:
    """The report shown in the UI: the policy, counts per rule, dropped sites, the worst sites and
    each finding (the first :data:`REPORT_ROWS`; all in ``csv_path``)."""
    lines = [
        f"## Data quality: {domain}",
        "",
        f"Policy: implausible -> **{quality.implausible}**, unusable -> **{quality.unusable}**, "
        f"suspicious -> **{quality.suspicious}** (thresholds: docs/quality.md).",
        "",
    ]
    if not len(events) and not len(dropped):
        checks = ", ".join(sorted({c for _, c in RULES.values()}))
        return "\n".join([*lines, f"No finding: every check passed ({checks})."])
    lines += ["### Counts per rule", "", table(counts_per_rule(events)) if len(events) else "none", ""]
    if len(dropped):
        lines += [f"### Sites left out ({len(dropped)})", "", table(dropped), ""]
    if len(events):
        lines += ["### Worst sites", "", table(worst_sites(events)), ""]
        shown = _listing(events.head(REPORT_ROWS))
        more = len(events) - len(shown)
        lines += [f"### Findings ({len(events)})", "", table(shown), ""]
        if more:
            lines += [f"... and {more} more: every finding is in `{csv_path}` and the table quality_events."]
    return "\n".join(lines)


def events_csv(events: pd.DataFrame) -> str:
    """Every finding as CSV text (dates as days, values in full precision)."""
    out = events[list(EVENT_COLUMNS)].copy()
    out["date"] = pd.to_datetime(out["date"]).dt.strftime("%Y-%m-%d")
    return out.to_csv(index=False, float_format="%.9g")


def store_rows(events: pd.DataFrame, domain: str, run_id: str) -> pd.DataFrame:
    """The rows of the store table ``quality_events`` for one source and run."""
    out = events[list(EVENT_COLUMNS)].rename(columns={"class": "finding_class"}).copy()
    out["date"] = pd.to_datetime(out["date"]).dt.date
    out["value"] = pd.to_numeric(out["value"], errors="coerce").astype("float64")
    out.insert(0, "run_id", run_id)
    out.insert(0, "domain", domain)
    return out
