"""Reviews: one per driver and station, pagination, deletion, an exact rating also under concurrency."""

import asyncio

from tests.accounts.factories import make_driver, make_station


async def station_rating(db, station_id):
    rows = await db.fetch("SELECT rating_average, rating_count FROM stations WHERE id = :id", {"id": station_id})
    return tuple(rows[0])


async def test_post_update_list_delete(client, db, backend, driver, other_driver, station):
    url = f"/api/v1/stations/{station.id}/reviews"
    assert (await client.get(f"/api/v1/stations/{station.id}")).json()["rating"] == {"average": None, "count": 0}
    first = await client.post(url, headers=driver.headers, json={"rating": 5, "comment": "Quick"})
    assert first.status_code == 201
    body = first.json()
    assert (body["rating"], body["comment"], body["author"], body["user_id"]) == (5, "Quick", "Ada", driver.id)
    assert await station_rating(db, station.id) == (5.0, 1)

    updated = await client.post(url, headers=driver.headers, json={"rating": 2})
    assert updated.status_code == 200
    assert updated.json()["id"] == body["id"] and updated.json()["comment"] is None
    assert await station_rating(db, station.id) == (2.0, 1)

    assert (await client.post(url, headers=other_driver.headers, json={"rating": 5})).status_code == 201
    assert await station_rating(db, station.id) == (3.5, 2)
    # The cached station answer follows (the write made it stale).
    assert (await client.get(f"/api/v1/stations/{station.id}")).json()["rating"] == {"average": 3.5, "count": 2}

    listed = (await client.get(url)).json()
    assert [r["author"] for r in listed["items"]] == ["Grace", "Ada"] and listed["next_cursor"] is None

    assert (await client.delete(f"{url}/me", headers=driver.headers)).status_code == 204
    assert await station_rating(db, station.id) == (5.0, 1)
    assert (await client.delete(f"{url}/me", headers=driver.headers)).status_code == 404
    assert (await client.delete(f"{url}/me", headers=other_driver.headers)).status_code == 204
    assert await station_rating(db, station.id) == (None, 0)


async def test_pagination_walks_every_review_once(client, db, settings, backend, station):
    drivers = [await make_driver(db, settings) for _ in range(7)]
    for i, d in enumerate(drivers):
        await client.post(f"/api/v1/stations/{station.id}/reviews", headers=d.headers, json={"rating": i % 5 + 1})
    seen, cursor = [], None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (await client.get(f"/api/v1/stations/{station.id}/reviews", params=params)).json()
        seen += [r["user_id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [d.id for d in reversed(drivers)]
    bad = await client.get(f"/api/v1/stations/{station.id}/reviews", params={"cursor": "!!"})
    assert bad.status_code == 422


async def test_validation_and_missing_station(client, driver, station):
    url = f"/api/v1/stations/{station.id}/reviews"
    for rating in (0, 6, "x"):
        response = await client.post(url, headers=driver.headers, json={"rating": rating})
        assert response.status_code == 422
        assert response.json()["error"]["details"][0]["field"] == "rating"
    assert (await client.post("/api/v1/stations/999999/reviews", headers=driver.headers, json={"rating": 3})).status_code == 404
    assert (await client.get("/api/v1/stations/999999/reviews")).status_code == 404


async def test_fifty_concurrent_reviews_give_the_exact_average(client, db, settings, backend):
    target = await make_station(db)
    drivers = [await make_driver(db, settings) for _ in range(50)]
    ratings = [(i * 7) % 5 + 1 for i in range(50)]
    responses = await asyncio.gather(
        *(
            client.post(f"/api/v1/stations/{target.id}/reviews", headers=d.headers, json={"rating": r})
            for d, r in zip(drivers, ratings, strict=True)
        )
    )
    assert [r.status_code for r in responses] == [201] * 50
    assert await station_rating(db, target.id) == (sum(ratings) / 50, 50)

    # Concurrent updates and deletions keep it exact too.
    new_ratings = [5 - (i % 5) for i in range(25)]
    await asyncio.gather(
        *(
            client.post(f"/api/v1/stations/{target.id}/reviews", headers=d.headers, json={"rating": r})
            for d, r in zip(drivers[:25], new_ratings, strict=True)
        ),
        *(client.delete(f"/api/v1/stations/{target.id}/reviews/me", headers=d.headers) for d in drivers[25:40]),
    )
    expected = new_ratings + ratings[40:]
    assert await station_rating(db, target.id) == (sum(expected) / len(expected), len(expected))
    station = (await client.get(f"/api/v1/stations/{target.id}")).json()
    assert station["rating"] == {"average": sum(expected) / len(expected), "count": len(expected)}
