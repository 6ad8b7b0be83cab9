"""A model's reuse fingerprint: the settings it was trained with, as one JSON text.

A model in the store is reused when its data hash and this fingerprint are those of the run that
asks for it (:func:`synergy_dagster.models.fit.fit_sets`). The fingerprint is derived from the
resolved settings by one general rule (:func:`synergy_dagster.config.settings_record`): every
setting that shapes the weights is recorded, except that a setting added after models were first
recorded is left out while it is at its default, so models trained before it existed stay reusable.
Settings that do not change the weights (``checkpoint_every``, the test-time ``warmup``) carry
``affects_model: False`` in their schema entry and are never recorded.
"""

from __future__ import annotations

import json
from typing import Any

from synergy_dagster.config import Budget, DomainWindow, Period, Profile, Training, settings_record


def reuse_fingerprint(
    profile: Profile,
    domain: str,
    budget: Budget,
    *,
    n_in: int,
    inputs: list[str],
    normalizer: Any,
    train: Period,
    validation: str,
) -> str:
    """The JSON (sorted keys) a trained model is recorded and looked up with.

    ``inputs`` are the input variables in order, ``normalizer`` the statistics the training set was
    normalised with, ``train`` its training period and ``validation`` the label of its held-out
    period; ``budget`` the budget it trains under (metric resolved for the domain).
    """
    dom = profile.for_domain(domain)
    record: dict[str, Any] = {
        "profile": profile.name,
        **settings_record(profile, Training),
        **settings_record(dom, DomainWindow),
        "n_in": n_in,
        "inputs": inputs,
        "normalizer": normalizer,
        "train": [train.start, train.end],
        "budget": budget.to_dict(),
        "validation": validation,
    }
    if not dom.recipe.is_paper:  # absent = the paper's recipe (models from before recipes existed)
        record["recipe"] = dom.recipe.to_dict()
    return json.dumps(record, sort_keys=True)
