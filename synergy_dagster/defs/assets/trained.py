"""What the assets that test trained models share: the models of a domain and budget, the message
naming the command that trains a missing one, and a loader that turns a bad model file into a
failure naming that command."""

from collections.abc import Callable
from typing import Any

import dagster as dg
import pandas as pd

from synergy_dagster.defs.resources import MetadataStoreResource
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
