"""Metadata helpers shared by the asset modules."""

from __future__ import annotations

import base64

import dagster as dg


def png_markdown(png: bytes, alt: str = "figure") -> dg.MetadataValue:
    """A PNG inline in Markdown metadata (the file is also written under data/)."""
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")
