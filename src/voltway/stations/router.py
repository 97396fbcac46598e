"""Station endpoints (search, nearest, detail, writes)."""

from fastapi import APIRouter

router = APIRouter(prefix="/stations", tags=["stations"])
