"""Tools an agent calls: `search[query]` through a search backend ("serpapi", "local" BM25 or "none"), with a
query cache shared through the store and FireAct's observation perturbation. Unknown tools and tool errors
come back as observations, never as crashes of the run."""

from __future__ import annotations

import asyncio
import importlib
from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args

from ...errors import NotFoundError, ToolError
from ...records import Action
from .perturb import Perturber

SEARCH_BACKENDS = {"serpapi": "serpapi_search:SerpAPISearch", "local": "bm25_search:BM25Search"}
SearchKind = Literal["serpapi", "local", "none"]  # what a run can search with: a backend, or nothing
SEARCH_KINDS: tuple[SearchKind, ...] = get_args(SearchKind)
TOOL_NAMES = ("search", "finish")


class SearchBackend(Protocol):
    name: str

    def search(self, query: str) -> str | None: ...


def make_search(kind: str, **options: Any) -> SearchBackend | None:
    """The search backend registered as `kind` ("none" gives no search at all)."""
    if kind == "none":
        return None
    if kind not in SEARCH_BACKENDS:
        raise NotFoundError(f"unknown search backend '{kind}'; backends: serpapi, local, none")
    module_name, class_name = SEARCH_BACKENDS[kind].split(":")
    module = importlib.import_module(f"{__name__}.{module_name}")
    return getattr(module, class_name)(**options)


class SearchCache:
    """Queries searched before, per backend: loaded from the store when a run starts; new results are handed
    to `persist` (the run's database writer) so the cache is shared with later runs."""

    def __init__(self, entries: dict[str, str | None] | None = None, persist: Any = None):
        self.entries = dict(entries or {})
        self.persist = persist
        self.hits = 0

    def get(self, query: str) -> tuple[bool, str | None]:
        if query in self.entries:
            self.hits += 1
            return True, self.entries[query]
        return False, None

    def put(self, query: str, result: str | None) -> None:
        self.entries[query] = result
        if self.persist is not None:
            self.persist(query, result)


@dataclass
class Observation:
    text: str
    perturbed: str | None = None
    original: str | None = None
    cached: bool = False


class Toolbox:
    """Runs one action: a search (cached, perhaps perturbed) or feedback for anything else but finish."""

    def __init__(self, search: SearchBackend | None, cache: SearchCache | None = None,
                 perturber: Perturber | None = None):
        self.search_backend = search
        self.cache = cache if cache is not None else SearchCache()
        self.perturber = perturber or Perturber()
        self.calls = 0
        self.ready: asyncio.Event | None = None  # set: the cache holds what the store had (searches wait for it)

    async def run(self, action: Action, key: tuple, history: list[str]) -> Observation:
        name = (action.name or "").lower()
        if name != "search":
            return Observation(f"Invalid action: there is no tool '{action.name}'. Use search[query] or "
                               "finish[answer].")
        if self.search_backend is None:
            return Observation("Search is not available in this run; answer with finish[answer].")
        text, cached = await self._search((action.arg or "").strip())
        kind, replaced = self.perturber.apply(text, key, history)
        if kind is None:
            return Observation(text, cached=cached)
        return Observation(replaced, perturbed=kind, original=text, cached=cached)

    async def fireact_run(self, name: str, arg: str, key: tuple, history: list[str]) -> Observation:
        """A tool call as FireAct's `call_tools` makes it: the query exactly as read (not stripped), a result
        formatted as is ("None" when nothing was found), any failure as "('name', 'arg') generated an exception:
        ...", "search" the only tool (case counts)."""
        if name != "search" or self.search_backend is None:
            reason = f"Unknown tool name: {name}" if name != "search" else "search is not available in this run"
            return Observation(f"{(name, arg)!r} generated an exception: {reason}")
        if self.ready is not None:
            await self.ready.wait()
        found, result = self.cache.get(arg)
        if not found:
            self.calls += 1
            try:
                result = await asyncio.to_thread(self.search_backend.search, arg)
            except Exception as exc:  # noqa: BLE001 - FireAct reports any failure as the observation
                return Observation(f"{(name, arg)!r} generated an exception: {exc}")
            result = None if result is None else str(result)
            self.cache.put(arg, result)
        text = f"{result}"
        kind, replaced = self.perturber.apply(text, key, history)
        if kind is None:
            return Observation(text, cached=found)
        return Observation(replaced, perturbed=kind, original=text, cached=found)

    async def _search(self, query: str) -> tuple[str, bool]:
        backend = self.search_backend
        if backend is None:
            return "Search is not available in this run; answer with finish[answer].", False
        if self.ready is not None:
            await self.ready.wait()
        found, result = self.cache.get(query)
        if found:
            return _as_observation(result), True
        self.calls += 1
        try:
            result = await asyncio.to_thread(backend.search, query)
        except ToolError as exc:
            return f"Search failed: {exc}", False
        except Exception as exc:  # noqa: BLE001 - a broken backend is reported to the model, not raised
            return f"Search failed: {type(exc).__name__}: {exc}", False
        self.cache.put(query, result)
        return _as_observation(result), False


def _as_observation(result: str | None) -> str:
    """FireAct writes a search that found nothing as "None"."""
    return "None" if result is None else str(result).strip() or "None"


__all__ = ["Observation", "Perturber", "SearchCache", "Toolbox", "make_search", "SEARCH_BACKENDS", "SEARCH_KINDS", "SearchKind", "TOOL_NAMES"]
