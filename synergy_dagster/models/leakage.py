"""The leakage audit of a trained set: which of some sites' data occur in its training tensors.

A held-out site (a PUB fold, a PUR region) must leave no trace in its model's training data. The
stored site list says which sites a model trained on; :func:`shared_target_rows` checks the tensors
themselves. It compares target series as the model saw them: normalised with the training set's
own statistics, so the candidates must be built exactly as the training arrays were
(:func:`synergy_dagster.models.fit.training_tensors` with the same training set and only the site
list changed). Raw observations would never match a normalised row, and the check would pass
whatever the data held.
"""

from __future__ import annotations

import numpy as np

from synergy_dagster.models.normalization import Arrays


def _row_keys(y: np.ndarray) -> np.ndarray:
    """One opaque key per site: the bytes of its target row (NaN bytes included, so a missing day
    matches only a missing day)."""
    rows = np.ascontiguousarray(y.reshape(y.shape[0], -1))
    return rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()


def shared_target_rows(training: Arrays, candidates: Arrays) -> list[str]:
    """The candidate sites whose whole target series (every day of the period, as normalised and
    masked) equals a site row of ``training``'s targets, in the candidates' order.

    Both arrays must cover the same days with the same target (built by the same call); anything
    else is a ValueError, since rows of different days or variables can never match and the audit
    would pass vacuously.
    """
    if training.target_name != candidates.target_name:
        raise ValueError(f"targets differ: {training.target_name!r} vs {candidates.target_name!r}")
    if not training.time.equals(candidates.time):
        raise ValueError(
            f"the candidates cover {candidates.n_days} days from {candidates.time[0].date()}, the "
            f"training tensors {training.n_days} from {training.time[0].date()}: build both with one call"
        )
    found = np.isin(_row_keys(candidates.y), _row_keys(training.y))
    return [str(s) for s in candidates.site_ids[found]]
