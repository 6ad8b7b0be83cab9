"""Tests of the regions layer."""
