"""Export of every station as GeoJSON: throughput and peak memory, through the CLI and over HTTP.

    python bench/synth.py /tmp/bench.db                  # once: 300,000 synthetic stations
    python bench/export_geojson.py /tmp/bench.db [--http]

CLI: runs `voltway export geojson -o FILE` under `/usr/bin/time -v` and reports stations/s, MB/s and the
process's peak resident memory, split into its own (anonymous) memory and the SQLite pages it maps. With `--http` it also starts `voltway serve` on the same database and reads
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
import psutil

from search_http import free_port
from synth import database_url


def count_features(path: Path) -> int:
    document = orjson.loads(path.read_bytes())
    assert document["type"] == "FeatureCollection"
    return len(document["features"])


def _rss_mb(pid: int) -> tuple[float, float]:
    """(anonymous, file-backed) resident memory of a process in MB, from /proc (0 when it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0, 0.0
    anon = re.search(r"RssAnon:\s+(\d+) kB", status)
    file = re.search(r"RssFile:\s+(\d+) kB", status)
    return (int(anon.group(1)) / 1024 if anon else 0.0), (int(file.group(1)) / 1024 if file else 0.0)


def cli_export(env: dict[str, str], out: Path) -> tuple[float, str]:
    """(seconds, memory summary) of the CLI export under /usr/bin/time -v.

    /usr/bin/time's maximum RSS includes the SQLite file pages mapped by `PRAGMA mmap_size` (file-backed,
    shared with the page cache); /proc's RssAnon, sampled every 20 ms, is the process's own memory.
    """
    voltway = str(Path(sys.executable).with_name("voltway"))
    timed = subprocess.Popen(
        ["/usr/bin/time", "-v", voltway, "export", "geojson", "-o", str(out)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    peak_anon = peak_file = 0.0
    while timed.poll() is None:
        for child in psutil.Process(timed.pid).children():
            anon, file = _rss_mb(child.pid)
            peak_anon, peak_file = max(peak_anon, anon), max(peak_file, file)
        time.sleep(0.02)
    stderr = timed.stderr.read() if timed.stderr else ""
    if timed.returncode != 0:
        raise SystemExit(f"export failed:\n{stderr}")
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", stderr)
    hours, minutes, seconds = int(wall.group(1) or 0), int(wall.group(2)), float(wall.group(3))
    memory = (f"peak RSS {peak_kb / 1024:.0f} MB (/usr/bin/time -v), of which anonymous {peak_anon:.0f} MB and "
              f"file-backed (mapped SQLite pages) up to {peak_file:.0f} MB")
    return hours * 3600 + minutes * 60 + seconds, memory


def http_export(env: dict[str, str], out: Path) -> tuple[float, str]:
    """(seconds, server memory summary) of a streamed HTTP export."""
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
        anon, file = _rss_mb(server.pid)
    return elapsed, f"server peak RSS {peak_kb / 1024:.0f} MB (now: anonymous {anon:.0f} MB, file-backed {file:.0f} MB)"


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
            seconds, memory = run(env, out)
            size_mb = out.stat().st_size / 1e6
            count = count_features(out)
            print(f"{label}: {count} stations, {size_mb:.0f} MB in {seconds:.1f} s = {count / seconds:,.0f} "
                  f"stations/s ({size_mb / seconds:.0f} MB/s); {memory}")


if __name__ == "__main__":
    main()
