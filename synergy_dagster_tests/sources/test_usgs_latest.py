"""A test period ending at ``latest``: the newest day both streamflow and forcing cover."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from synergy_dagster.defs.resources import StudyResource
from synergy_dagster.experiments.affected import affected_partitions
from synergy_dagster.layout import Layout
from synergy_dagster.sources.sitedata import make_site_dataset
from synergy_dagster.sources.usgs_latest import covered_until, landing_periods, with_latest_test_end
from synergy_dagster.study_file import resolve_study
from synergy_dagster_tests.runconfig import TINY_STUDY

DYNAMIC = ["total_precipitation_sum", "temperature_2m_mean", "potential_evaporation_sum"]
TIME = pd.date_range("2001-10-01", "2010-03-31", freq="D")


def _sites(q_until: str, forcing_until: str) -> object:
    """Two sites; streamflow until ``q_until`` at site 1 only, forcing until ``forcing_until``."""
    q = np.ones((2, len(TIME)))
    q[0, pd.Timestamp("2009-09-30") < TIME] = np.nan
    q[1, pd.Timestamp(q_until) < TIME] = np.nan
    x = np.ones((2, len(TIME)))
    x[:, pd.Timestamp(forcing_until) < TIME] = np.nan
    return make_site_dataset(
        domain="streamflow", source="test", site_ids=["a", "b"], time=TIME, lat=np.full(2, 40.0),
        lon=np.full(2, -100.0), target=("streamflow", q, "mm/d"),
        dynamic={name: (x, "") for name in DYNAMIC},
    )  # fmt: skip


def test_covered_until_needs_streamflow_and_every_forcing() -> None:
    assert covered_until(_sites("2010-02-10", "2010-01-20"), DYNAMIC) == pd.Timestamp("2010-01-20")
    assert covered_until(_sites("2010-01-05", "2010-01-20"), DYNAMIC) == pd.Timestamp("2010-01-05")
    ds = _sites("2010-01-05", "2010-01-20")
    ds["streamflow"][:] = np.nan
    assert covered_until(ds, DYNAMIC) is None


def _study(tmp_path: Path, test_end: str) -> object:
    return resolve_study(
        TINY_STUDY, [f"data_dir={tmp_path / 'data'}", f"domains.streamflow.usgs.test_end={test_end}"]
    )


def test_latest_extends_the_test_period_and_never_shrinks_it(tmp_path: Path) -> None:
    study = _study(tmp_path, "latest")
    assert with_latest_test_end(study) is study  # nothing prepared yet: as written
    path = Layout(tmp_path / "data").sites_nc("streamflow")
    path.parent.mkdir(parents=True)
    _sites("2010-02-10", "2010-01-20").to_netcdf(path)
    latest = with_latest_test_end(study)
    assert latest.periods("streamflow").test.end == "2010-01-20"
    assert latest.periods("streamflow").test.start == study.periods("streamflow").test.start
    assert latest.periods("streamflow").train == study.periods("streamflow").train
    assert latest.periods("soil_moisture") == study.periods("soil_moisture")
    assert latest.source == study.source and latest.overrides == study.overrides
    assert with_latest_test_end(_study(tmp_path, "fixed")).periods("streamflow").test.end == "2009-09-30"
    # coverage that ends before the written end leaves it as written
    _sites("2009-05-01", "2009-05-01").to_netcdf(path)
    assert with_latest_test_end(study).periods("streamflow").test.end == "2009-09-30"


def test_the_study_resource_resolves_latest(tmp_path: Path) -> None:
    path = Layout(tmp_path / "data").sites_nc("streamflow")
    path.parent.mkdir(parents=True)
    _sites("2010-02-10", "2010-03-01").to_netcdf(path)
    resource = StudyResource(
        study_file=str(TINY_STUDY),
        data_dir=str(tmp_path / "data"),
        overrides=["domains.streamflow.usgs.test_end=latest"],
    )
    assert resource.spec.periods("streamflow").test.end == "2010-02-10"


def test_with_latest_a_landed_day_after_the_test_end_re_evaluates(tmp_path: Path) -> None:
    plan = SimpleNamespace(
        sets={"key": ["global:CONUS"], "trained_as": [None], "site_ids": [["a", "b"]]},
        evaluations={"eval_site_ids": [["a", "b"]]},
    )
    landed = pd.DataFrame({"site_id": ["b"], "date": pd.to_datetime(["2009-11-02"]), "value": [1.0]})
    judged = {}
    for end in ("fixed", "latest"):
        spec = _study(tmp_path, end).domain("streamflow")
        judged[end] = affected_partitions(landed, plan, landing_periods(spec, landed["date"]))  # type: ignore[arg-type]
    assert judged == {"fixed": ([], False), "latest": ([], True)}
