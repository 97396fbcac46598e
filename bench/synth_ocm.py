"""Synthetic stations in Open Charge Map's compact form (ids only, null keys omitted), for import benchmarks.

    python bench/synth_ocm.py OUT.json [-n 300000] [--seed 7]

The stations are bench/synth.py's (realistic spread, regional connectors); each is written the way
ocm-export writes a POI, with reference ids from the bundled reference data. The file is written record by
record, so generating it takes little memory.
"""

import argparse
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).parent))
from synth import generate  # noqa: E402

from voltway.ingest.reference import bundled_reference  # noqa: E402

CONNECTION_TYPE_ID = {
    "type2": 25, "ccs2": 33, "type1": 1, "ccs1": 32, "chademo": 2, "nacs": 27, "tesla": 30, "gbt_ac": 1038,
    "gbt_dc": 1040, "schuko": 28, "three_pin": 3, "cee": 34, "other": 13, "unknown": 0,
}  # fmt: skip
STATUS_TYPE_ID = {"available": 50, "occupied": 20, "out_of_service": 100, "planned": 150, "removed": 200, "unknown": 0}
CURRENT_TYPE_ID = {"AC": 20, "DC": 30}
USAGE_TYPE_ID = {"Public": 1}


def compact_pois(n: int, seed: int) -> Iterator[dict[str, Any]]:
    ref = bundled_reference()
    country_id = {iso: cid for cid, iso in ref.countries.items()}
    operator_id = {title: oid for oid, title in ref.operators.items()}
    operator_ids = sorted(ref.operators)
    for i, s in enumerate(generate(n, seed)):
        poi: dict[str, Any] = {
            "ID": 1_000_000 + i,
            "UUID": f"00000000-0000-4000-8000-{i:012d}",
            "DataProviderID": 1,
            "OperatorID": operator_id.get(s["operator"], operator_ids[zlib.crc32(s["operator"].encode()) % len(operator_ids)]),
            "UsageTypeID": USAGE_TYPE_ID.get(s["usage"], 0),
            "AddressInfo": {
                "ID": 2_000_000 + i,
                "Title": s["name"],
                "AddressLine1": s["address"],
                "Town": s["town"],
                "Postcode": s["postcode"],
                "CountryID": country_id.get(s["country"], 1),
                "Latitude": s["latitude"],
                "Longitude": s["longitude"],
                "DistanceUnit": 0,
            },
            "Connections": [
                {
                    "ID": 3_000_000 + i * 10 + k,
                    "ConnectionTypeID": CONNECTION_TYPE_ID[c["type"]],
                    "StatusTypeID": STATUS_TYPE_ID[c["status"]],
                    "LevelID": 3 if c["current"] == "DC" else 2,
                    "PowerKW": c["power_kw"],
                    "CurrentTypeID": CURRENT_TYPE_ID[c["current"]],
                    "Quantity": c["quantity"],
                }
                for k, c in enumerate(s["connectors"])
            ],
            "NumberOfPoints": sum(c["quantity"] for c in s["connectors"]),
            "StatusTypeID": STATUS_TYPE_ID[s["status"]],
            "DateLastStatusUpdate": "2025-06-01T12:00:00Z",
            "DataQualityLevel": 1,
            "DateCreated": "2024-01-01T00:00:00Z",
            "SubmissionStatusTypeID": 200,
        }
        if s.get("usage_cost"):
            poi["UsageCost"] = s["usage_cost"]
        yield poi


def write(path: Path, n: int, seed: int) -> None:
    with path.open("wb") as out:
        out.write(b"[")
        for i, poi in enumerate(compact_pois(n, seed)):
            out.write(b",\n" if i else b"\n")
            out.write(orjson.dumps(poi))
        out.write(b"\n]\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("-n", type=int, default=300_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    write(args.out, args.n, args.seed)


if __name__ == "__main__":
    main()
