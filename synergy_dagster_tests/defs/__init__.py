"""Tests of the defs layer."""
