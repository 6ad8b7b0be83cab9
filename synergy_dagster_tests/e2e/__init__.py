"""Whole studies end to end (minutes each)."""
