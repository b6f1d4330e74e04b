"""The hazard categories (预警类别) the platform knows: what a warning may be about and what a
department key may be allowed to warn about. services/warning/rules.yaml names each one."""

from __future__ import annotations

HAZARDS: tuple[str, ...] = (
    "rainstorm",
    "typhoon",
    "lightning",
    "heat",
    "cold",
    "hail",
    "fog",
    "wind",
    "snow",
    "flood",
    "drought",
    "geological",
    "earthquake",
    "forest_fire",
    "public_health",
    "hazmat",
    "production_accident",
    "traffic",
    "other",
)
