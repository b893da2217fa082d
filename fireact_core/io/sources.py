"""Which source an imported file goes into.

A source holds one file. Its trajectory ids derive from the source name and the row's position, so the same file
imported again adds nothing; the sha256 of the file's bytes is kept with the source (`meta.sha256`). A different
file under a name already in use (another file's, a generated run's) goes to a new source, NAME-2 (then NAME-3,
...), so that none of its rows is taken for one already there; the import's report says so.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..background import in_background

if TYPE_CHECKING:
    from ..store import Store


def file_sha256(path: str | Path) -> str | None:
    """The sha256 of the file's bytes (None when it cannot be read: the reader then says why)."""
    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError:
        return None


@dataclass
class SourceClaim:
    """The source name a file is imported under, the one asked for when that was another file's, and the file's
    sha256 (computed beside the import, on time it leaves idle, when the name was free)."""

    name: str
    asked: str
    pending: Future

    @property
    def renamed(self) -> bool:
        return self.name != self.asked

    def sha256(self) -> str | None:
        return self.pending.result()


def _in_use(store: Store, name: str) -> bool:
    return store.get_source(name) is not None or store.count_trajectories(name) > 0


def claim_source(store: Store, path: str, wanted: str) -> SourceClaim:
    """The source for `path`: `wanted` when it is free or holds this very file, else the first NAME-n that is."""
    pending = in_background(file_sha256, path)
    if not _in_use(store, wanted):
        return SourceClaim(wanted, wanted, pending)
    digest = pending.result()
    name, n = wanted, 1
    while True:
        held = store.get_source(name)
        if not _in_use(store, name) or (digest is not None and held is not None and held.meta.get("sha256") == digest):
            return SourceClaim(name, wanted, pending)
        n += 1
        name = f"{wanted}-{n}"
