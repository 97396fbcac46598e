"""Which search statements leave the event loop: the area they narrow to (`narrowed_area_km2`)."""

import math

import pytest

from voltway.core.geo import EARTH_RADIUS_KM, GeoBox
from voltway.stations.search import SLOW_AREA_KM2, StationQuery, narrowed_area_km2, parse_bbox

KM_PER_DEG = math.pi * EARTH_RADIUS_KM / 180


def test_box_areas_are_taken_on_the_sphere() -> None:
    assert GeoBox(-90, 90, ((-180, 180),)).area_km2() == pytest.approx(4 * math.pi * EARTH_RADIUS_KM**2)
    # A 1° cell: about 111 km square at the equator, its width shrinking with the cosine of the latitude.
    assert GeoBox(0, 1, ((0, 1),)).area_km2() == pytest.approx(KM_PER_DEG**2, rel=1e-4)
    assert GeoBox(60, 61, ((0, 1),)).area_km2() == pytest.approx(KM_PER_DEG**2 * math.cos(math.radians(60.5)), rel=1e-3)
    # Across the antimeridian both longitude ranges count.
    assert parse_bbox("179,0,-179,1").area_km2() == pytest.approx(2 * KM_PER_DEG**2, rel=1e-3)


def test_wide_searches_are_the_slow_ones() -> None:
    city = StationQuery(origin=(52.52, 13.40), radius_km=10)
    assert narrowed_area_km2(city, 10) == pytest.approx(20 * 20, rel=0.01)  # the box around the circle
    assert narrowed_area_km2(city, 10) < SLOW_AREA_KM2
    # A growing circle leaves the loop once it is wide.
    assert narrowed_area_km2(city, 200) > SLOW_AREA_KM2
    continent = StationQuery(box=parse_bbox("-10,35,30,60"))
    assert narrowed_area_km2(continent, None) > SLOW_AREA_KM2
    # A radius inside a box: the smaller of the two narrows.
    both = StationQuery(origin=(52.52, 13.40), radius_km=10, box=parse_bbox("-10,35,30,60"))
    assert narrowed_area_km2(both, 10) == narrowed_area_km2(city, 10)
    # Neither a radius nor a box (a listing by id, `nearest` once its circle covers the sphere): everything.
    assert narrowed_area_km2(StationQuery(), None) == pytest.approx(4 * math.pi * EARTH_RADIUS_KM**2)
    assert narrowed_area_km2(StationQuery(origin=(0.0, 0.0)), None) > SLOW_AREA_KM2
