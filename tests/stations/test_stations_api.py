"""Station endpoints over the app, on SQLite and PostgreSQL: CRUD, roles, errors, filters, sorting."""

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from station_factories import make_station

from voltway.core.db import Database
from voltway.core.geo import haversine_km

API = "/api/v1/stations"


async def create(client: httpx.AsyncClient, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    response = await client.post(API, json=make_station(**fields), headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def error_fields(response: httpx.Response) -> list[str]:
    body = response.json()
    assert set(body) == {"error"}
    return [d["field"] for d in body["error"]["details"]]


# --------------------------------------------------------------------------------------------- CRUD
async def test_create_returns_the_station_and_detail_reads_it_back(
    client: httpx.AsyncClient, operator_headers: dict[str, str]
) -> None:
    before = datetime.now(UTC)
    created = await create(client, operator_headers, external_id="berlin-1")
    updated_at = datetime.fromisoformat(created.pop("updated_at"))
    assert before <= updated_at <= datetime.now(UTC)
    ids = [c.pop("id") for c in created["connectors"]]
    assert ids == sorted(ids) and len(set(ids)) == 2
    assert created == {
        "id": created["id"],
        "source": "voltway",
        "external_id": "berlin-1",
        "name": "Berlin Hauptbahnhof P+R",
        "address": "Europaplatz 1",
        "town": "Berlin",
        "postcode": "10557",
        "country": "DE",
        "latitude": 52.5251,
        "longitude": 13.3694,
        "operator": "Ionity",
        "usage": "Public",
        "status": "available",
        "usage_cost": "0,59 EUR/kWh",
        "price": None,
        "connectors": [
            {"type": "ccs2", "type_name": "CCS (Type 2)", "power_kw": 350.0, "current": "DC", "quantity": 4,
             "status": "available"},
            {"type": "type2", "type_name": "Type 2 (Socket Only)", "power_kw": 22.0, "current": "AC", "quantity": 2,
             "status": "available"},
        ],
        "max_power_kw": 350.0,
        "rating": {"average": None, "count": 0},
    }
    detail = (await client.get(f"{API}/{created['id']}")).json()
    assert datetime.fromisoformat(detail.pop("updated_at")) == updated_at
    assert [c.pop("id") for c in detail["connectors"]] == ids
    assert detail == created


async def test_create_with_price_and_defaults(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    price = {"currency": "EUR", "per_kwh": 0.59, "per_minute": None, "per_session": 1.0, "free": False}
    body = {"name": "Minimal", "latitude": -33.5, "longitude": 151.25, "price": price, "country": "au"}
    response = await client.post(API, json=body, headers=admin_headers)
    assert response.status_code == 201, response.text
    station = response.json()
    assert (station["source"], station["status"], station["country"]) == ("voltway", "unknown", "AU")
    assert (station["connectors"], station["max_power_kw"], station["price"]) == ([], None, price)


async def test_writes_need_an_operator_or_admin_key(
    client: httpx.AsyncClient, readonly_headers: dict[str, str], operator_headers: dict[str, str]
) -> None:
    station = await create(client, operator_headers)
    path = f"{API}/{station['id']}"
    for headers, status, code in (({}, 401, "unauthorized"), ({"X-API-Key": "vw_wrong"}, 401, "unauthorized"),
                                  (readonly_headers, 403, "forbidden")):
        responses = [
            await client.post(API, json=make_station(), headers=headers),
            await client.patch(path, json={"name": "x"}, headers=headers),
            await client.delete(path, headers=headers),
            # The role is checked before the station is looked up.
            await client.delete(f"{API}/999999", headers=headers),
        ]
        for response in responses:
            assert response.status_code == status, response.text
            assert response.json()["error"]["code"] == code
    assert (await client.get(path)).json()["name"] == station["name"]


async def test_patch_changes_given_fields_and_recomputes_derived_columns(
    client: httpx.AsyncClient, operator_headers: dict[str, str], db: Database
) -> None:
    station = await create(client, operator_headers)
    response = await client.patch(
        f"{API}/{station['id']}",
        json={"name": "Renamed", "latitude": -41.29, "longitude": 174.78, "address": None,
              "connectors": [{"type": "chademo", "power_kw": 62.5, "current": "DC"}, {"type": "type2"}]},
        headers=operator_headers,
    )
    assert response.status_code == 200, response.text
    patched = response.json()
    assert (patched["name"], patched["address"], patched["town"]) == ("Renamed", None, "Berlin")
    assert (patched["latitude"], patched["longitude"], patched["max_power_kw"]) == (-41.29, 174.78, 62.5)
    assert [(c["type"], c["power_kw"], c["quantity"]) for c in patched["connectors"]] == [
        ("chademo", 62.5, 1), ("type2", None, 1)]
    assert patched["updated_at"] > station["updated_at"]
    # The stored unit vector follows the coordinates: the station is found at its new place only.
    near_new = (await client.get(API, params={"lat": -41.3, "lon": 174.8, "radius_km": 5})).json()["items"]
    near_old = (await client.get(API, params={"lat": 52.5251, "lon": 13.3694, "radius_km": 5})).json()["items"]
    assert [s["id"] for s in near_new] == [station["id"]] and near_old == []
    assert near_new[0]["distance_km"] == round(haversine_km(-41.3, 174.8, -41.29, 174.78), 3)
    async with db.engine.connect() as conn:
        connectors = (await conn.execute(text("SELECT count(*) FROM connectors"))).scalar_one()
    assert connectors == 2  # the replaced connectors are gone

    # Without connectors in the patch, they stay and max_power_kw is kept.
    again = (await client.patch(f"{API}/{station['id']}", json={"status": "occupied"}, headers=operator_headers)).json()
    assert (again["status"], again["max_power_kw"], again["connectors"]) == ("occupied", 62.5, patched["connectors"])
    # Required fields cannot be nulled.
    response = await client.patch(f"{API}/{station['id']}", json={"name": None, "latitude": None},
                                  headers=operator_headers)
    assert response.status_code == 422 and error_fields(response) == ["name", "latitude"]


async def test_delete_removes_the_station_and_its_connectors(
    client: httpx.AsyncClient, operator_headers: dict[str, str], db: Database
) -> None:
    station = await create(client, operator_headers)
    response = await client.delete(f"{API}/{station['id']}", headers=operator_headers)
    assert (response.status_code, response.content) == (204, b"")
    for response in (await client.get(f"{API}/{station['id']}"),
                     await client.delete(f"{API}/{station['id']}", headers=operator_headers),
                     await client.patch(f"{API}/{station['id']}", json={"name": "x"}, headers=operator_headers)):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "station_not_found"
    async with db.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM connectors"))).scalar_one() == 0


async def test_source_and_external_id_are_unique(client: httpx.AsyncClient, operator_headers: dict[str, str]) -> None:
    first = await create(client, operator_headers, external_id="a-1")
    clash = await client.post(API, json=make_station(external_id="a-1"), headers=operator_headers)
    assert clash.status_code == 409
    assert clash.json()["error"] == {
        "code": "conflict",
        "message": "a station with source 'voltway' and external_id 'a-1' already exists",
        "details": {"source": "voltway", "external_id": "a-1"},
    }
    await create(client, operator_headers, external_id="a-1", source="ocm")  # another source: no clash
    await create(client, operator_headers, external_id=None)
    await create(client, operator_headers, external_id=None)  # no external id: no clash
    renamed = await client.patch(f"{API}/{first['id']}", json={"external_id": "a-2"}, headers=operator_headers)
    assert renamed.status_code == 200  # frees a-1
    second = await create(client, operator_headers, external_id="a-1")
    response = await client.patch(f"{API}/{second['id']}", json={"external_id": "a-2"}, headers=operator_headers)
    assert response.status_code == 409


async def test_detail_errors(client: httpx.AsyncClient) -> None:
    missing = await client.get(f"{API}/424242")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "station_not_found"
    bad = await client.get(f"{API}/abc")
    assert bad.status_code == 422 and error_fields(bad) == ["station_id"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"latitude": 91}, "latitude"),
        ({"longitude": -180.5}, "longitude"),
        ({"name": ""}, "name"),
        ({"country": "DEU"}, "country"),
        ({"status": "broken"}, "status"),
        ({"connectors": [{"type": "ccs9"}]}, "connectors.0.type"),
        ({"connectors": [{"type": "ccs2", "power_kw": -1}]}, "connectors.0.power_kw"),
    ],
)
async def test_create_validation_names_the_field(
    client: httpx.AsyncClient, operator_headers: dict[str, str], change: dict[str, Any], field: str
) -> None:
    response = await client.post(API, json=make_station(**change), headers=operator_headers)
    assert response.status_code == 422
    assert error_fields(response) == [field]


# ------------------------------------------------------------------------------------------- search
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"radius_km": 5}, "radius_km"),
        ({"lat": 10}, "lon"),
        ({"lon": 10}, "lat"),
        ({"lat": 95, "lon": 0}, "lat"),
        ({"lat": "north", "lon": 0}, "lat"),
        ({"lat": 0, "lon": 0, "radius_km": -1}, "radius_km"),
        ({"lat": 0, "lon": 0, "radius_km": "nan"}, "radius_km"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"bbox": "1,2,3"}, "bbox"),
        ({"bbox": "0,10,5,5"}, "bbox"),
        ({"bbox": "0,0,200,5"}, "bbox"),
        ({"bbox": "a,b,c,d"}, "bbox"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"sort": "distance"}, "sort"),
        ({"sort": "price"}, "sort"),
        ({"connector": "ccs9"}, "connector.0"),
        ({"min_power_kw": -5}, "min_power_kw"),
        ({"status": "broken"}, "status"),
        ({"country": "Germany"}, "country"),
    ],
)
async def test_search_validation_names_the_field(
    client: httpx.AsyncClient, params: dict[str, Any], field: str
) -> None:
    response = await client.get(API, params=params)
    assert response.status_code == 422, response.text
    assert error_fields(response) == [field]


async def test_nearest_validation(client: httpx.AsyncClient) -> None:
    for params, field in (({"lat": 1}, "lon"), ({"lat": 1, "lon": 2, "k": 0}, "k"), ({"lat": 1, "lon": 2, "k": 501}, "k")):
        response = await client.get(f"{API}/nearest", params=params)
        assert response.status_code == 422 and error_fields(response) == [field]


async def test_a_cursor_belongs_to_its_sort(client: httpx.AsyncClient, operator_headers: dict[str, str]) -> None:
    for _ in range(3):
        await create(client, operator_headers)
    page = (await client.get(API, params={"limit": 1, "sort": "power"})).json()
    response = await client.get(API, params={"limit": 1, "sort": "id", "cursor": page["next_cursor"]})
    assert response.status_code == 422 and error_fields(response) == ["cursor"]


async def test_removed_and_linked_duplicates_are_left_out(
    client: httpx.AsyncClient, operator_headers: dict[str, str], db: Database
) -> None:
    kept = await create(client, operator_headers, name="Kept")
    removed = await create(client, operator_headers, name="Removed", status="removed")
    duplicate = await create(client, operator_headers, name="Duplicate")
    async with db.engine.begin() as conn:
        await conn.execute(text("UPDATE stations SET duplicate_of_id = :k WHERE id = :d"),
                           {"k": kept["id"], "d": duplicate["id"]})
    near = {"lat": 52.52, "lon": 13.37}
    for params in ({}, near, {**near, "radius_km": 10}, {"bbox": "13,52,14,53"}):
        items = (await client.get(API, params=params)).json()["items"]
        assert [s["id"] for s in items] == [kept["id"]], params
    nearest = (await client.get(f"{API}/nearest", params=near)).json()["items"]
    assert [s["id"] for s in nearest] == [kept["id"]]
    only_removed = (await client.get(API, params={"status": "removed"})).json()["items"]
    assert [s["id"] for s in only_removed] == [removed["id"]]
    assert (await client.get(f"{API}/{duplicate['id']}")).status_code == 200


async def test_filters(client: httpx.AsyncClient, operator_headers: dict[str, str]) -> None:
    def plug(code: str, power: float | None) -> dict[str, Any]:
        return {"type": code, "power_kw": power}

    mixed = await create(client, operator_headers, name="Mixed 50% Off", operator="Ionity",
                         connectors=[plug("ccs2", 50), plug("chademo", 150)])
    fast = await create(client, operator_headers, name="Fast", operator="IONITY", town="Lyon", country="FR",
                        connectors=[plug("ccs2", 150)])
    slow = await create(client, operator_headers, name="Slow", operator="Allego", address="Rue_du Moulin",
                        status="occupied", connectors=[plug("type2", 22), plug("ccs2", None)])
    bare = await create(client, operator_headers, name="Bare", operator=None, connectors=[])

    async def ids(**params: Any) -> list[int]:
        response = await client.get(API, params=params)
        assert response.status_code == 200, response.text
        return [s["id"] for s in response.json()["items"]]

    # The connector criteria hold for one and the same connector.
    assert await ids(connector="ccs2", min_power_kw=150) == [fast["id"]]
    assert await ids(connector=["ccs2", "chademo"], min_power_kw=150) == [mixed["id"], fast["id"]]
    assert await ids(connector="ccs2") == [mixed["id"], fast["id"], slow["id"]]
    assert await ids(min_power_kw=100) == [mixed["id"], fast["id"]]
    assert await ids(min_power_kw=0) == [mixed["id"], fast["id"], slow["id"]]
    assert await ids(connector="nacs") == []
    assert await ids(operator="ionity") == [mixed["id"], fast["id"]]
    assert await ids(country="fr") == [fast["id"]]
    assert await ids(status="occupied") == [slow["id"]]
    # Text: case-insensitive substring of name, address, town or operator; % and _ are plain characters.
    assert await ids(q="LYON") == [fast["id"]]
    assert await ids(q="ionity") == [mixed["id"], fast["id"]]
    assert await ids(q="50%") == [mixed["id"]]
    assert await ids(q="e_d") == [slow["id"]]
    assert await ids(q="%") == [mixed["id"]]
    assert await ids(q="bar") == [bare["id"]]
    assert await ids(q="ionity", connector="chademo") == [mixed["id"]]
    # The same filters apply to nearest.
    nearest = (await client.get(f"{API}/nearest", params={"lat": 0, "lon": 0, "k": 5, "operator": "Allego"})).json()
    assert [s["id"] for s in nearest["items"]] == [slow["id"]] and nearest["next_cursor"] is None


async def test_sort_by_power_and_rating_with_pages(
    client: httpx.AsyncClient, operator_headers: dict[str, str], db: Database
) -> None:
    powers = [50, None, 350, 50, 22, None, 350]
    ratings = [4.5, None, 3.0, 4.5, 5.0, 1.0, None]
    stations = [await create(client, operator_headers, connectors=[{"type": "ccs2", "power_kw": p}]) for p in powers]
    async with db.engine.begin() as conn:
        for station, rating in zip(stations, ratings, strict=True):
            await conn.execute(text("UPDATE stations SET rating_average = :r, rating_count = :n WHERE id = :id"),
                               {"r": rating, "n": 0 if rating is None else 3, "id": station["id"]})
    ids = [s["id"] for s in stations]

    def expected(values: list[float | None]) -> list[int]:
        return [i for _v, i in sorted(zip(values, ids, strict=True), key=lambda p: (-(p[0] if p[0] is not None else -1), p[1]))]

    for sort, values in (("power", powers), ("rating", ratings), ("id", [0] * len(ids))):
        for limit in (1, 2, 3, 7):
            walked, cursor = [], None
            while True:
                params: dict[str, Any] = {"sort": sort, "limit": limit}
                if cursor:
                    params["cursor"] = cursor
                page = (await client.get(API, params=params)).json()
                walked.extend(page["items"])
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            assert [s["id"] for s in walked] == expected(values), (sort, limit)
            assert all("distance_km" not in s for s in walked)
    rated = (await client.get(API, params={"sort": "rating", "limit": 1})).json()["items"][0]
    assert rated["rating"] == {"average": 5.0, "count": 3}
