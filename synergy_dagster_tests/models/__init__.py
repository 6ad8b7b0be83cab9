"""Tests of the models layer."""
