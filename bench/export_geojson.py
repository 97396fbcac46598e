"""Export of every station as GeoJSON: throughput and peak memory, through the CLI and over HTTP.

    python bench/synth.py /tmp/bench.db                  # once: 300,000 synthetic stations
    python bench/export_geojson.py /tmp/bench.db [--http]

CLI: runs `voltway export geojson -o FILE` under `/usr/bin/time -v` and reports stations/s, MB/s and the
process's peak resident memory. With `--http` it also starts `voltway serve` on the same database and reads
`GET /api/v1/stations/export?format=geojson` as a stream (the server's peak memory is read from its
/proc status, VmHWM). Both check that the output is one FeatureCollection with every station.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import orjson

from search_http import free_port
from synth import database_url


def count_features(path: Path) -> int:
    document = orjson.loads(path.read_bytes())
    assert document["type"] == "FeatureCollection"
    return len(document["features"])


def cli_export(env: dict[str, str], out: Path) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of the CLI export."""
    voltway = str(Path(sys.executable).with_name("voltway"))
    result = subprocess.run(
        ["/usr/bin/time", "-v", voltway, "export", "geojson", "-o", str(out)],
        env=env, check=True, capture_output=True, text=True,
    )
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", result.stderr)
    hours, minutes, seconds = int(wall.group(1) or 0), int(wall.group(2)), float(wall.group(3))
    return hours * 3600 + minutes * 60 + seconds, peak_kb / 1024


def http_export(env: dict[str, str], out: Path) -> tuple[float, float]:
    """(seconds, server peak RSS in MB) of a streamed HTTP export."""
    port = free_port()
    voltway = str(Path(sys.executable).with_name("voltway"))
    with ExitStack() as stack:
        server = subprocess.Popen([voltway, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        stack.callback(server.wait, 10)
        stack.callback(server.terminate)
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
                break
            except OSError:
                time.sleep(0.2)
        started = time.perf_counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/stations/export?format=geojson",
                                    timeout=600) as response, out.open("wb") as file:
            while chunk := response.read(1 << 20):
                file.write(chunk)
        elapsed = time.perf_counter() - started
        status = Path(f"/proc/{server.pid}/status").read_text()
        peak_kb = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))
    return elapsed, peak_kb / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", help="a SQLite file loaded by synth.py, or a database URL")
    parser.add_argument("--http", action="store_true", help="also export over HTTP from a running server")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "DATABASE_URL": database_url(args.target), "LOG_DIR": tmp, "LOG_LEVEL": "WARNING",
               "DATA_DIR": tmp}
        out = Path(tmp) / "stations.geojson"
        runs = [("CLI (voltway export geojson -o FILE)", cli_export)]
        if args.http:
            runs.append(("HTTP (GET /api/v1/stations/export?format=geojson)", http_export))
        for label, run in runs:
            seconds, peak_mb = run(env, out)
            size_mb = out.stat().st_size / 1e6
            count = count_features(out)
            print(f"{label}: {count} stations, {size_mb:.0f} MB in {seconds:.1f} s = {count / seconds:,.0f} "
                  f"stations/s ({size_mb / seconds:.0f} MB/s); peak RSS {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
