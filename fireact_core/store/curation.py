"""Store mixin for this feature (SQL lives here, tables are registered through schema.register)."""

from __future__ import annotations


class BrowseStore:
    """Mixin of `Store`."""
