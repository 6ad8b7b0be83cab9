"""The thin Dagster layer: assets per stage, resources, IO managers, sensors, definitions."""
