"""What every writer of the virtual CONUS shares: the version stamp, the Caravan subset name and the
helpers that make files byte-identical for a seed (plain CSV bytes, pinned GeoPackage timestamps)."""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyogrio

GENERATOR_VERSION = "1.0.0"
# Name recorded in manifests and file attributes. It names the generator, not a module path: the
# files of a seed must keep their bytes when the code moves.
GENERATOR_NAME = "synergy_dagster.sources.virtual_conus"
SUBSET = "virtual"
FIXED_GPKG_TIME = "2000-01-01T00:00:00.000Z"


def csv_bytes(table: pa.Table) -> bytes:
    """CSV with a plain header line, shortest float repr, empty cells for nulls (deterministic)."""
    buf = io.BytesIO()
    pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    return (",".join(table.column_names) + "\n").encode() + buf.getvalue()


def frame_csv(df: pd.DataFrame) -> bytes:
    """A data frame as CSV bytes with ``\\n`` line ends and 6 significant digits."""
    return df.to_csv(index=False, lineterminator="\n", float_format="%.6g").encode()


@contextlib.contextmanager
def fixed_gpkg_time() -> Iterator[None]:
    """GDAL stamps GeoPackages with the current time; pin it so the same seed gives the same bytes."""
    old = pyogrio.get_gdal_config_option("OGR_CURRENT_DATE")
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": FIXED_GPKG_TIME})
    try:
        with warnings.catch_warnings():  # the temp file's ".tmp" suffix; it is renamed to .gpkg after
            warnings.filterwarnings("ignore", message="The filename extension should be 'gpkg'")
            yield
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": old})
