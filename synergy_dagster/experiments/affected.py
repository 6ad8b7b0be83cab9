"""Which parts of an experiment plan new data touch: the training sets to retrain, the evaluation to redo.

Kept beside the plan (not in the Dagster layer) so the rule can be tested on a plan and a table alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from synergy_dagster.config import DomainPeriods
from synergy_dagster.experiments.plan import Plan


def affected_partitions(landed: pd.DataFrame, plan: Plan, periods: DomainPeriods) -> tuple[list[str], bool]:
    """Training partitions to retrain and whether to re-evaluate, for landed values.

    ``landed`` has columns site_id (plan ids), date, value. A partition is affected when its site
    list holds a site with a finite new value inside the training period (sets trained as another
    set map to that one); the evaluation when a partition is, or a new value falls in the test
    period at an evaluated site.
    """
    ok = landed[np.isfinite(landed["value"].to_numpy(dtype=np.float64))]
    dates = pd.to_datetime(ok["date"])
    train = set(
        ok.loc[dates.between(*map(pd.Timestamp, (periods.train.start, periods.train.end))), "site_id"]
    )
    test = set(ok.loc[dates.between(*map(pd.Timestamp, (periods.test.start, periods.test.end))), "site_id"])
    keys: list[str] = []
    for key, trained_as, sites in zip(
        plan.sets["key"], plan.sets["trained_as"], plan.sets["site_ids"], strict=True
    ):
        target = str(trained_as or key)  # identical site lists are trained once, as `trained_as`
        if target not in keys and train.intersection(sites):
            keys.append(target)
    evaluated = any(test.intersection(ids) for ids in plan.evaluations["eval_site_ids"])
    return keys, bool(keys) or evaluated


def plan_site_ids(plan: Plan) -> list[str]:
    """Every site id any training set of the plan uses, sorted."""
    return sorted({s for ids in plan.sets["site_ids"] for s in ids})
