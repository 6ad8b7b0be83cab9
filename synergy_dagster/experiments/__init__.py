"""The experiment plan: global-vs-local and similar-vs-dissimilar training sets and evaluations."""

from synergy_dagster.experiments.plan import Plan, build_plan, set_key, sites_hash
from synergy_dagster.experiments.size_control import pick_added, stable_seed

__all__ = ["Plan", "build_plan", "pick_added", "set_key", "sites_hash", "stable_seed"]
