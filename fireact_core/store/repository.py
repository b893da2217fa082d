"""The base of the store's repositories: one feature's SQL over the store's one `Connections`.

A repository holds no state of its own besides its read cache (`cache.cached_read`); what it needs from another
feature it is given when `Store` composes it (another repository, or a function), never reached through a shared
`self`."""

from __future__ import annotations

from .connection import Connections


class Repository:
    """One feature's reads and writes; every repository of a store shares its `db`."""

    def __init__(self, db: Connections) -> None:
        self.db = db
