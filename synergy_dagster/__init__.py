"""synergy_dagster: is one unified LSTM better than regional ones? (Fang et al., WRR 2022)."""

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # `dagster ... -m synergy_dagster` finds the Definitions here, while importing the science
    # packages alone never imports Dagster.
    if name == "definitions":
        from synergy_dagster.defs.definitions import defs

        return defs
    raise AttributeError(name)


def __dir__() -> list[str]:
    return ["__version__", "definitions"]
