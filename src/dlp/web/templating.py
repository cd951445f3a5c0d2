"""The UI's Jinja2 environment: templates and static files ship inside the package."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates

WEB_DIR = Path(__file__).parent
STATIC_DIR = WEB_DIR / "static"

templates = Jinja2Templates(directory=WEB_DIR / "templates")


def format_number(value: Any, digits: int = 4) -> str:
    """A metric as people read it: ``digits`` significant digits, integers as they are."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}"


def format_bytes(size: int | None) -> str:
    """A byte count in B, KB, MB or GB."""
    if size is None:
        return "—"
    amount = float(size)
    for unit in ("B", "KB", "MB"):
        if amount < 1024:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} GB"


def heat_level(count: int, largest: int) -> int:
    """The shade (0-5) of a confusion-matrix cell holding ``count`` of at most ``largest``."""
    if largest <= 0 or count <= 0:
        return 0
    return max(1, math.ceil(5 * count / largest))


templates.env.filters["num"] = format_number
templates.env.filters["bytes"] = format_bytes
templates.env.globals["heat_level"] = heat_level
