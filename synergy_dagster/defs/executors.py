"""The executor is configuration, not code: ``SYNERGY_EXECUTOR`` picks it at load time.

``in_process`` (default: cheapest on a laptop; steps share the torch thread pool),
``multiprocess`` (one process per step; DuckDB steps serialised by the ``duckdb`` pool),
and the scale-out engines ``k8s``, ``celery`` and ``docker`` when their packages are installed.
"""

from __future__ import annotations

import dagster as dg

from synergy_dagster.env import env_int, env_str
from synergy_dagster.errors import ConfigError

EXECUTORS = ("in_process", "multiprocess", "k8s", "celery", "docker")


def executor_from_env(name: str | None = None) -> dg.ExecutorDefinition:
    name = name or env_str("SYNERGY_EXECUTOR", "in_process")
    if name == "in_process":
        return dg.in_process_executor
    if name == "multiprocess":
        # DuckDB steps carry pool "duckdb"; its limit (1) lives in dagster.yaml.
        return dg.multiprocess_executor.configured({"max_concurrent": env_int("SYNERGY_MAX_CONCURRENT", 2)})
    try:
        if name == "k8s":
            from dagster_k8s import k8s_job_executor

            return k8s_job_executor
        if name == "celery":
            from dagster_celery import celery_executor

            return celery_executor
        if name == "docker":
            from dagster_docker import docker_executor

            return docker_executor
    except ImportError as exc:
        raise ConfigError("SYNERGY_EXECUTOR", f"{name!r} needs its package installed: {exc}") from exc
    raise ConfigError("SYNERGY_EXECUTOR", f"unknown executor {name!r}; expected one of {EXECUTORS}")
