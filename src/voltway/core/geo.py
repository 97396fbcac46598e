"""Spherical geometry on a sphere of the mean Earth radius."""

import math
from collections.abc import Callable
from dataclasses import dataclass

EARTH_RADIUS_KM = 6371.0088


def unit_vector(lat: float, lon: float) -> tuple[float, float, float]:
    """The point as a unit vector (x, y, z); stored with each station for exact distance ordering in SQL."""
    phi, lam = math.radians(lat), math.radians(lon)
    cos_phi = math.cos(phi)
    return cos_phi * math.cos(lam), cos_phi * math.sin(lam), math.sin(phi)


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in kilometres."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlam = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlam / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def haversine_from(lat: float, lon: float) -> Callable[[float, float], float]:
    """`haversine_km` from a fixed point, with its trigonometry done once (for many distances from it)."""
    phi1, lam1 = math.radians(lat), math.radians(lon)
    cos_phi1 = math.cos(phi1)
    radians, sin, cos, asin, sqrt = math.radians, math.sin, math.cos, math.asin, math.sqrt

    def distance(lat2: float, lon2: float) -> float:
        phi2 = radians(lat2)
        a = sin((phi2 - phi1) / 2) ** 2 + cos_phi1 * cos(phi2) * sin((radians(lon2) - lam1) / 2) ** 2
        return 2 * EARTH_RADIUS_KM * asin(min(1.0, sqrt(a)))

    return distance


HALF_CIRCUMFERENCE_KM = math.pi * EARTH_RADIUS_KM
# Distances up to this (a micrometre) count as zero: one point written two ways (a pole at any longitude,
# longitude 180 and -180) is computed a few 1e-13 km from itself.
SAME_POINT_KM = 1e-9
# Bounding boxes are widened by this much (degrees, ~1 m) so that float rounding, including the 32-bit
# coordinates of SQLite's R*Tree, never drops a point that lies exactly on the edge; the exact test follows.
BOX_MARGIN_DEG = 1e-5


def chord2_within(radius_km: float) -> float:
    """The squared chord between two unit vectors `radius_km` apart on the surface (monotone in distance)."""
    half_angle = min(radius_km / EARTH_RADIUS_KM, math.pi) / 2
    return (2 * math.sin(half_angle)) ** 2


def chord2_to_km(chord2: float) -> float:
    """The great-circle distance for a squared chord (inverse of `chord2_within`)."""
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(max(chord2, 0.0)) / 2))


SPHERE_AREA_KM2 = 4 * math.pi * EARTH_RADIUS_KM**2


@dataclass(frozen=True, slots=True)
class GeoBox:
    """A latitude band and one or two longitude ranges (two when the box crosses the antimeridian)."""

    min_lat: float
    max_lat: float
    lon_ranges: tuple[tuple[float, float], ...]

    def area_km2(self) -> float:
        """The box's area on the sphere: R² × its longitude span in radians × the difference of the sines of
        its latitudes."""
        span = math.radians(sum(east - west for west, east in self.lon_ranges))
        band = math.sin(math.radians(self.max_lat)) - math.sin(math.radians(self.min_lat))
        return EARTH_RADIUS_KM**2 * span * band


def split_longitudes(min_lon: float, max_lon: float) -> tuple[tuple[float, float], ...]:
    """Longitude ranges of a box from `min_lon` east to `max_lon`; min_lon > max_lon crosses the antimeridian."""
    if min_lon <= max_lon:
        return ((min_lon, max_lon),)
    return ((min_lon, 180.0), (-180.0, max_lon))


def circle_box(lat: float, lon: float, radius_km: float) -> GeoBox | None:
    """The smallest latitude/longitude box around a circle on the sphere; None when it is the whole sphere.

    A circle that reaches a pole spans every longitude; one that crosses the antimeridian gets two ranges.
    """
    angle = radius_km / EARTH_RADIUS_KM
    if angle >= math.pi:
        return None
    angle_deg = math.degrees(angle) + BOX_MARGIN_DEG
    min_lat, max_lat = lat - angle_deg, lat + angle_deg
    if min_lat <= -90.0 or max_lat >= 90.0:
        return GeoBox(max(min_lat, -90.0), min(max_lat, 90.0), ((-180.0, 180.0),))
    # The widest longitude offset of the circle (its tangent meridians), from spherical trigonometry.
    ratio = math.sin(angle) / math.cos(math.radians(lat))
    if ratio >= 1.0:
        return GeoBox(min_lat, max_lat, ((-180.0, 180.0),))
    dlon = math.degrees(math.asin(ratio)) + BOX_MARGIN_DEG
    if dlon >= 180.0:
        return GeoBox(min_lat, max_lat, ((-180.0, 180.0),))
    west, east = lon - dlon, lon + dlon
    if west <= -180.0:
        return GeoBox(min_lat, max_lat, split_longitudes(west + 360.0, east))
    if east >= 180.0:
        return GeoBox(min_lat, max_lat, split_longitudes(west, east - 360.0))
    return GeoBox(min_lat, max_lat, ((west, east),))
