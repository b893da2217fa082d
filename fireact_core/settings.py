"""Numbers read from the FIREACT_* environment settings that tune imports (sizes, counts)."""

from __future__ import annotations

import math
import os

from .errors import PrerequisiteError


def env_number(name: str, default: float) -> float:
    """The number the setting `name` holds, or `default` when it is unset or blank; a PrerequisiteError naming
    the setting when it holds anything but a finite number."""
    text = os.environ.get(name, "")
    if not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise PrerequisiteError(f"{name}={text!r} is not a number: set it to one (default {default:g}) or unset it")
    return value
