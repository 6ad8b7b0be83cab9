"""synergy_dagster: is one unified LSTM better than regional ones? (Fang et al., WRR 2022)."""

__version__ = "0.1.0"
