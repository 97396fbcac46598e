"""Duplicate detection: the rule, the canonical choice, groups, unlinking, and the report of an import."""

import io
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from voltway.core.db import SQLITE_ONE_PASS_CACHE_KIB, Database
from voltway.core.geo import haversine_km
from voltway.ingest.csv_io import import_csv
from voltway.ingest import duplicates
from voltway.ingest.duplicates import normalize_operator, text_similarity

pytestmark = pytest.mark.usefixtures("backend")
StationFactory = Callable[..., dict[str, Any]]
BULK = "/api/v1/stations/bulk"
# About 1.1 m of latitude per 1e-5 degree.
M = 1 / 111_195


@pytest.fixture(params=["boxes", "sweep"], autouse=True)
def neighbour_search(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs with both neighbour searches: a box query per station and the sweep over the table."""
    monkeypatch.setattr(duplicates, "SWEEP_SHARE", 2.0 if request.param == "boxes" else 0.0)


def test_text_similarity() -> None:
    assert text_similarity("Acme Hub, Harbour St.", "ACME HUB HARBOUR ST") == 1.0
    assert text_similarity("Café Müller Charging Station", "cafe muller") == 1.0  # generic words left out
    assert text_similarity("Harbour Street Car Park", "Harbour St Car Park") >= 0.75
    assert text_similarity("Acme Hub 1", "Acme Hub 2") == 0.0  # numbers differ
    assert text_similarity("12 Harbour Street", "14 Harbour Street") == 0.0
    assert text_similarity("Acme Hub", "Acme Hub 2") == 1.0  # one side has no number
    assert text_similarity("Supermarket car park", "Airport long stay") < 0.5
    assert text_similarity(None, "x") == 0.0


def test_normalize_operator() -> None:
    assert normalize_operator("Acme Energy Ltd.") == normalize_operator("ACME energy") == "acme energy"
    assert normalize_operator("(Unknown Operator)") is None
    assert normalize_operator("") is None and normalize_operator(None) is None
    assert normalize_operator("Ionity GmbH") == "ionity"


async def _links(db: Database) -> dict[str, str | None]:
    """external_id -> external_id of the canonical station (None when not linked)."""
    rows = await db.fetch(
        "SELECT s.source || ':' || s.external_id, c.source || ':' || c.external_id "
        "FROM stations s LEFT JOIN stations c ON c.id = s.duplicate_of_id ORDER BY s.id",
        {},
    )
    return dict(rows)  # type: ignore[arg-type]


async def _ids(db: Database) -> dict[str, int]:
    rows = await db.fetch("SELECT source || ':' || external_id, id FROM stations", {})
    return dict(rows)  # type: ignore[arg-type]


async def _post(client: httpx.AsyncClient, headers: dict[str, str], items: list[dict[str, Any]]) -> dict[str, Any]:
    response = await client.post(BULK, json=items, headers=headers)
    assert response.status_code == 200 and response.json()["errors"] == [], response.text
    return response.json()


LAT, LON = -36.8485, 174.7633


def _ocm(n: int, **overrides: Any) -> dict[str, Any]:
    """A sparse open-data listing (no operator, no price, few fields)."""
    item = {"source": "ocm", "external_id": str(n), "name": "Acme Harbour Street", "latitude": LAT,
            "longitude": LON, "connectors": [{"type": "ccs2"}]}
    item.update(overrides)
    return item


async def test_listings_of_one_site_are_linked_to_the_most_complete(
    client: httpx.AsyncClient, operator_headers: dict[str, str], db: Database, station_item: StationFactory
) -> None:
    await _post(client, operator_headers, [
        _ocm(1),  # the canonical's duplicate: same place, no operator (unknown does not block)
        _ocm(2, name="Airport Long Stay", latitude=LAT + 50 * M),  # near, but another name and address
        _ocm(3, name="Acme Harbour Street", latitude=LAT + 400 * M),  # same name, but 400 m away
    ])
    assert set((await _links(db)).values()) == {None}
    csv_body = (
        "source,external_id,name,address,latitude,longitude,operator,usage_cost\n"
        f"acme,h-1,ACME – Harbour St. charging,1 Harbour Street,{LAT + 80 * M},{LON},Acme Energy Ltd,0.45 NZD/kWh\n"
    ).encode()
    report = await import_csv(db, io.BytesIO(csv_body))
    ids = await _ids(db)
    assert [(d.station_id, d.duplicate_of_id) for d in report.duplicates] == [(ids["ocm:1"], ids["acme:h-1"])]
    link = report.duplicates[0]
    assert link.distance_m == pytest.approx(haversine_km(LAT, LON, LAT + 80 * M, LON) * 1000, abs=0.1)
    # "acme harbour st" / "acme harbour street" (sorted significant tokens): difflib ratio 2 * 15 / 34
    assert link.similarity == round(2 * 15 / 34, 3)
    assert await _links(db) == {"ocm:1": "acme:h-1", "ocm:2": None, "ocm:3": None, "acme:h-1": None}

    # The linked listing is left out of searches and exports, and still readable by id.
    search = (await client.get("/api/v1/stations", params={"limit": 50})).json()
    assert ids["ocm:1"] not in {s["id"] for s in search["items"]}
    assert (await client.get(f"/api/v1/stations/{ids['ocm:1']}")).status_code == 200


async def test_groups_get_one_canonical_and_no_chains(
    client: httpx.AsyncClient, operator_headers: dict[str, str], db: Database
) -> None:
    await _post(client, operator_headers, [_ocm(1), _ocm(2, latitude=LAT + 30 * M)])  # equal completeness
    assert await _links(db) == {"ocm:1": None, "ocm:2": "ocm:1"}  # the tie goes to the older (lower id)

    # A more complete listing arrives: it becomes the canonical and both others point straight at it.
    richer = _ocm(9, source="acme", operator="Acme", address="1 Harbour Street", town="Auckland",
                  latitude=LAT + 200 * M)
    await _post(client, operator_headers, [richer])
    assert await _links(db) == {"ocm:1": "acme:9", "ocm:2": "acme:9", "acme:9": None}

    # It moves away: it loses its place in the group, the other two are linked again among themselves.
    await _post(client, operator_headers, [{**richer, "latitude": LAT + 2000 * M}])
    assert await _links(db) == {"ocm:1": None, "ocm:2": "ocm:1", "acme:9": None}


async def test_numbers_and_operators_keep_neighbours_apart(
    client: httpx.AsyncClient, operator_headers: dict[str, str], db: Database
) -> None:
    await _post(client, operator_headers, [
        _ocm(1, name="Acme Hub 1", operator="Acme"),
        _ocm(2, name="Acme Hub 2", operator="Acme", latitude=LAT + 10 * M),
        _ocm(3, name="Acme Hub", operator="Volt Co", latitude=LAT + 20 * M),
    ])
    assert set((await _links(db)).values()) == {None}


async def test_a_listing_of_unknown_operator_never_joins_two_operators(
    client: httpx.AsyncClient, operator_headers: dict[str, str], db: Database
) -> None:
    await _post(client, operator_headers, [
        _ocm(1, name="Acme Harbour Street"),  # unknown operator, matches both below
        _ocm(2, source="acme", name="Acme Harbour Street", operator="Acme", latitude=LAT + 20 * M),
        _ocm(3, source="volt", name="Acme Harbour St", operator="Volt Co", latitude=LAT - 10 * M),
    ])
    # ocm:1 matches acme:2 better (identical name), so it joins that group; volt:3 stays apart.
    assert await _links(db) == {"ocm:1": "acme:2", "acme:2": None, "volt:3": None}


async def test_neighbours_across_the_antimeridian_and_near_a_pole(
    client: httpx.AsyncClient, operator_headers: dict[str, str], db: Database
) -> None:
    await _post(client, operator_headers, [
        _ocm(1, latitude=-16.5, longitude=179.9995),
        _ocm(2, latitude=-16.5, longitude=-179.9995),  # about 107 m east, across the antimeridian
        _ocm(3, name="Polar hut", latitude=89.9995, longitude=0.0),
        _ocm(4, name="Polar hut", latitude=89.9995, longitude=180.0),  # about 111 m, over the pole
    ])
    assert await _links(db) == {"ocm:1": None, "ocm:2": "ocm:1", "ocm:3": None, "ocm:4": "ocm:3"}


async def test_unchanged_reimport_checks_nothing(
    client: httpx.AsyncClient, operator_headers: dict[str, str], db: Database
) -> None:
    await _post(client, operator_headers, [_ocm(1), _ocm(2, latitude=LAT + 30 * M)])
    csv_body = f"source,external_id,name,latitude,longitude\nocm,1,Acme Harbour Street,{LAT},{LON}\n".encode()
    report = await import_csv(db, io.BytesIO(csv_body))  # changes ocm:1 (its connectors): re-checked, link kept
    assert (report.updated, report.duplicates) == (1, [])
    assert await _links(db) == {"ocm:1": None, "ocm:2": "ocm:1"}


async def test_overlapping_linkings_give_the_read_settings_back(db: Database) -> None:
    """Two bulk requests' linkings may overlap, the first ending before the second: the slow-read connection
    gets its page cache and memory mapping back when the last one ends, not the small settings of linking."""
    if not db.is_sqlite:
        pytest.skip("the settings are SQLite's")

    async def settings() -> tuple[int, int]:
        ((mmap_size,),) = await db.fetch("PRAGMA mmap_size", {}, slow=True)
        ((cache_size,),) = await db.fetch("PRAGMA cache_size", {}, slow=True)
        return mmap_size, cache_size

    normal = await settings()
    first, second = duplicates._streaming_reads(db), duplicates._streaming_reads(db)
    await first.__aenter__()
    await second.__aenter__()
    assert await settings() == (0, -SQLITE_ONE_PASS_CACHE_KIB)
    await first.__aexit__(None, None, None)
    assert await settings() == (0, -SQLITE_ONE_PASS_CACHE_KIB)  # the second still reads
    await second.__aexit__(None, None, None)
    assert await settings() == normal == (268435456, -65536)
