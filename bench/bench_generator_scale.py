"""Time the virtual-CONUS generator, the readers and the tagging at several sizes, with peak memory.

Usage: python bench/bench_generator_scale.py [PIXELS/BASINS ...] [--pixel-chunk N] [--basin-chunk N]
    [--no-readers]
Default sizes: 10000/1000 30000/2500 100000/5000. Per size, each stage runs in a fresh subprocess so
its peak resident memory (``ru_maxrss``) is its own: ``generate`` (write the files),
``read_pixels`` (``read_pixel_cube`` of the SMAP-like NetCDF cube), ``read_caravan`` (``read_caravan``
of the basin CSVs), ``tag`` (``read_ecoregions`` + ``read_basin_polygons`` + ``tag_sites`` for the
pixels and the basins; reads the pixel coordinates only). Output goes to a temporary folder that is
removed. The last lines are a growth table (exponent of time and memory in the size) and the headline.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_SIZES = ("10000/1000", "30000/2500", "100000/5000")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout without installing the package
    sys.path.insert(0, str(ROOT))


STAGES = ("generate", "read_pixels", "read_caravan", "tag")


def _child(stage: str, out: Path, n_pixels: int, n_basins: int, pixel_chunk: int, basin_chunk: int) -> None:
    """Run one stage on ``out``; print a JSON line with seconds, peak RSS and a size figure."""
    import pandas as pd
    import xarray as xr

    from synergy_dagster.regions.tagging import tag_sites
    from synergy_dagster.sources.basin_polygons import read_basin_polygons
    from synergy_dagster.sources.caravan import read_caravan, read_caravan_attributes
    from synergy_dagster.sources.ecoregions import read_ecoregions
    from synergy_dagster.sources.pixels import read_pixel_cube
    from synergy_dagster.sources.virtual import VirtualConusConfig, generate_virtual_conus

    t0 = time.perf_counter()  # after the imports: they are the same at every size
    extra: dict[str, float] = {}
    if stage == "generate":
        cfg = VirtualConusConfig(
            n_pixels=n_pixels, n_basins=n_basins, pixel_chunk=pixel_chunk, basin_chunk=basin_chunk
        )
        manifest = generate_virtual_conus(out, cfg)
        extra["output_mb"] = sum(f["bytes"] for f in manifest["files"]) / 2**20
    elif stage == "read_pixels":
        ds = read_pixel_cube(out / "smap" / "virtual_pixels.nc")
        extra["data_mb"] = ds.nbytes / 2**20
    elif stage == "read_caravan":
        ds = read_caravan(out / "caravan", "virtual")
        extra["data_mb"] = ds.nbytes / 2**20
    elif stage == "tag":
        l3 = read_ecoregions(out / "ecoregions" / "us_eco_l3.gpkg")
        polys = read_basin_polygons(out / "basins" / "basin_polygons.gpkg").reset_index()
        with xr.open_dataset(out / "smap" / "virtual_pixels.nc") as cube:  # coordinates only
            pix = pd.DataFrame({"site_id": cube["pixel"].values.astype(str), "lat": cube["lat"].values,
                                "lon": cube["lon"].values})  # fmt: skip
        attrs = read_caravan_attributes(out / "caravan", "virtual")
        gauges = pd.DataFrame({"site_id": attrs.index.astype(str), "lat": attrs["gauge_lat"].to_numpy(),
                               "lon": attrs["gauge_lon"].to_numpy()})  # fmt: skip
        extra["read_inputs_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        tp = tag_sites(pix, l3, "soil_moisture")
        tb = tag_sites(gauges, l3, "streamflow", polygons=polys)
        extra["tag_only_s"] = time.perf_counter() - t1
        extra["tagged"] = float(len(tp.tagged) + len(tb.tagged))
    secs = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    print(json.dumps({"stage": stage, "pixels": n_pixels, "basins": n_basins, "seconds": secs,
                      "peak_rss_mb": rss_mb, **extra}))  # fmt: skip


def _parse_size(text: str) -> tuple[int, int]:
    try:
        p, b = text.split("/")
        return int(p), int(b)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"size {text!r} must look like PIXELS/BASINS, e.g. 10000/1000"
        ) from exc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sizes", nargs="*", type=_parse_size, default=[_parse_size(s) for s in DEFAULT_SIZES])
    ap.add_argument("--pixel-chunk", type=int, default=5000)
    ap.add_argument("--basin-chunk", type=int, default=500)
    ap.add_argument("--no-readers", action="store_true", help="time the generator only")
    ap.add_argument("--child", choices=STAGES, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        ((p, b),) = args.sizes
        _child(args.child, Path(args.out), p, b, args.pixel_chunk, args.basin_chunk)
        return 0
    stages = STAGES[:1] if args.no_readers else STAGES
    rows: list[dict[str, float]] = []
    print(f"{'stage':>13} {'pixels':>8} {'basins':>7} {'seconds':>9} {'peak RSS MB':>12} note", flush=True)
    for p, b in args.sizes:
        out = Path(tempfile.mkdtemp(prefix="virtual_bench_"))
        try:
            for stage in stages:
                cmd = [sys.executable, __file__, f"{p}/{b}", "--child", stage, "--out", str(out),
                       "--pixel-chunk", str(args.pixel_chunk), "--basin-chunk", str(args.basin_chunk)]  # fmt: skip
                res = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if res.returncode != 0:
                    print(f"stage {stage} at {p}/{b} failed:\n{res.stderr[-3000:]}", file=sys.stderr)
                    return res.returncode
                row = json.loads(res.stdout.strip().splitlines()[-1])
                rows.append(row)
                note = ", ".join(f"{k} {v:.1f}" for k, v in row.items() if k not in ("stage", "pixels", "basins",
                                 "seconds", "peak_rss_mb"))  # fmt: skip
                print(f"{stage:>13} {p:>8} {b:>7} {row['seconds']:>9.1f} {row['peak_rss_mb']:>12.0f} {note}",
                      flush=True)  # fmt: skip
        finally:
            shutil.rmtree(out, ignore_errors=True)
    # Growth: slope of log(time) and log(memory) against log(size) between the smallest and largest size.
    lo_p, hi_p = min(p for p, _ in args.sizes), max(p for p, _ in args.sizes)
    if hi_p > lo_p:
        print(f"growth exponents from {lo_p} to {hi_p} pixels (1 = linear in size):")
        for stage in stages:
            lo = next(r for r in rows if r["stage"] == stage and r["pixels"] == lo_p)
            hi = next(r for r in rows if r["stage"] == stage and r["pixels"] == hi_p)
            size_ratio = (
                math.log(hi["pixels"] / lo["pixels"])
                if stage != "read_caravan"
                else math.log(hi["basins"] / lo["basins"])
            )
            print(f"{stage:>13}: time x{hi['seconds'] / lo['seconds']:.1f} (exponent "
                  f"{math.log(hi['seconds'] / lo['seconds']) / size_ratio:.2f}), peak RSS "
                  f"x{hi['peak_rss_mb'] / lo['peak_rss_mb']:.1f}")  # fmt: skip
    gen = [r for r in rows if r["stage"] == "generate"]
    big = max(gen, key=lambda r: r["pixels"])
    at_big = {r["stage"]: r for r in rows if r["pixels"] == big["pixels"]}
    stage_txt = "; ".join(f"{k} {r['seconds']:.1f} s / {r['peak_rss_mb']:.0f} MB" for k, r in at_big.items())
    print(
        f"HEADLINE: at {big['pixels']} pixels / {big['basins']} basins: {stage_txt} "
        f"(max peak RSS over all stages and sizes {max(r['peak_rss_mb'] for r in rows):.0f} MB; pixel chunk "
        f"{args.pixel_chunk}, basin chunk {args.basin_chunk})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
