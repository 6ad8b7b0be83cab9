"""What the assets that test trained models share: the models of a domain and budget, the message
naming the command that trains a missing one, a loader that turns a bad model file into a
failure naming that command, and the scored prediction pass of planned evaluations."""

from collections.abc import Callable
from typing import Any

import dagster as dg
import pandas as pd
import torch

from synergy_dagster.defs.resources import MetadataStoreResource, StudyResource
from synergy_dagster.evaluation.study import Evaluated, predict_evaluations
from synergy_dagster.layout import Layout
from synergy_dagster.models.fit import load_trained
from synergy_dagster.models.normalization import Normalizer

STUDY_COMMAND = "make study   (or: python -m synergy_dagster.cli study --config <study file>)"


def trained_models(store: MetadataStoreResource, domain: str, budget: str) -> pd.DataFrame:
    return store.store().query("SELECT * FROM models WHERE domain = ? AND budget = ?", [domain, budget])


def missing_message(domain: str, missing: list[str], budget: str, what: str = "model") -> str:
    return (
        f"{len(missing)} {domain} {what} partition(s) were never trained under the {budget!r} "
        f"training budget: {missing[:8]}"
        f"{' ...' if len(missing) > 8 else ''}. Train them with:\n  {STUDY_COMMAND}\n"
        f"or one partition with:\n  dagster asset materialize -m synergy_dagster.defs.definitions "
        f"--select {domain}_training_set,{domain}_model --partition '{missing[0]}'"
    )


def model_loader(
    models: pd.DataFrame, layout: Layout, domain: str
) -> Callable[[str], tuple[dict[int, Any], Normalizer]]:
    """``load_trained`` for one domain; a missing or damaged file fails naming the re-train command."""

    def load(key: str) -> tuple[dict[int, Any], Normalizer]:
        try:
            return load_trained(models, layout, domain, key)
        except (FileNotFoundError, ValueError) as exc:
            raise dg.Failure(f"{exc}. Re-train it with:\n  {STUDY_COMMAND}") from exc

    return load


def predict_planned(
    study: StudyResource,
    store: MetadataStoreResource,
    domain: str,
    evaluations: pd.DataFrame,
    device: torch.device | None,
    what: str = "model",
) -> Evaluated:
    """Predict and score ``evaluations`` (plan rows) of ``domain`` with the models of the study's
    budget, on its test period under its ``usgs`` rule: the one set-up of every asset that scores
    planned models. A model the rows name that was never trained fails naming the command that
    trains it (``what`` names the kind of model in that message)."""
    profile = study.spec.training_profile()
    budget = profile.budget.mode
    models = trained_models(store, domain, budget)
    missing = sorted(set(evaluations["model_key"]) - set(models["set_key"]))
    if missing:
        raise dg.Failure(missing_message(domain, missing, budget, what))
    return predict_evaluations(
        study.layout,
        domain,
        study.domain(domain).usgs,
        study.spec.periods(domain).test,
        profile.for_domain(domain).warmup,
        evaluations,
        models,
        model_loader(models, study.layout, domain),
        device,
    )
