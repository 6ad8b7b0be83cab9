"""Tests of the project itself: configuration, layering, docs, tooling."""
