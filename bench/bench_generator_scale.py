"""Time the virtual-CONUS generator at several sizes and report peak memory.

Usage: python bench/bench_generator_scale.py [PIXELS/BASINS ...] [--pixel-chunk N] [--basin-chunk N]
Default sizes: 10000/1000 30000/2500 100000/5000. Each size runs in a fresh subprocess so its peak
resident memory (``ru_maxrss``) is its own; output goes to a temporary folder that is removed.
"""

from __future__ import annotations

import argparse
import json
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


def _child(n_pixels: int, n_basins: int, pixel_chunk: int, basin_chunk: int) -> None:
    """Generate one size; print a JSON line with seconds, peak RSS and output size."""
    from synergy_dagster.sources.virtual_conus import VirtualConusConfig, generate_virtual_conus

    out = Path(tempfile.mkdtemp(prefix="virtual_bench_"))
    try:
        cfg = VirtualConusConfig(
            n_pixels=n_pixels, n_basins=n_basins, pixel_chunk=pixel_chunk, basin_chunk=basin_chunk
        )
        t0 = time.perf_counter()
        manifest = generate_virtual_conus(out, cfg)
        secs = time.perf_counter() - t0
        size = sum(f["bytes"] for f in manifest["files"])
    finally:
        shutil.rmtree(out, ignore_errors=True)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    print(
        json.dumps(
            {
                "pixels": n_pixels,
                "basins": n_basins,
                "seconds": secs,
                "peak_rss_mb": rss_mb,
                "output_mb": size / 2**20,
            }
        )
    )


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
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        ((p, b),) = args.sizes
        _child(p, b, args.pixel_chunk, args.basin_chunk)
        return 0
    rows = []
    print(f"{'pixels':>8} {'basins':>7} {'seconds':>9} {'peak RSS MB':>12} {'output MB':>10}", flush=True)
    for p, b in args.sizes:
        cmd = [
            sys.executable,
            __file__,
            f"{p}/{b}",
            "--child",
            "--pixel-chunk",
            str(args.pixel_chunk),
            "--basin-chunk",
            str(args.basin_chunk),
        ]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            print(res.stderr[-3000:], file=sys.stderr)
            return res.returncode
        row = json.loads(res.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(
            f"{p:>8} {b:>7} {row['seconds']:>9.1f} {row['peak_rss_mb']:>12.0f} {row['output_mb']:>10.1f}",
            flush=True,
        )
    big = max(rows, key=lambda r: r["pixels"])
    print(
        f"HEADLINE: largest size {big['pixels']} pixels / {big['basins']} basins generated in "
        f"{big['seconds']:.1f} s with peak RSS {big['peak_rss_mb']:.0f} MB "
        f"(max over sizes {max(r['peak_rss_mb'] for r in rows):.0f} MB; pixel chunk {args.pixel_chunk}, "
        f"basin chunk {args.basin_chunk})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
