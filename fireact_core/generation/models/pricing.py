"""What model calls cost: USD per million input and output tokens. The shipped table is a starting point;
the one saved in the store (editable on the Generate page) takes its place."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ...store import Store

DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4": (30.00, 60.00),
    "gpt-3.5-turbo": (0.50, 1.50),
}


def price_table(store: Store | None) -> dict[str, tuple[float, float]]:
    saved = store.model_prices() if store is not None else {}
    return saved or dict(DEFAULT_PRICES)


def price_of(prices: dict[str, tuple[float, float]], model: str) -> tuple[float, float] | None:
    """The entry for `model`, or for the longest listed name it starts with (fine-tuned names such as
    "ft:gpt-4o-mini:org::id" fall back to their base); None when nothing matches."""
    if model in prices:
        return prices[model]
    bare = model.removeprefix("ft:")
    matches = [name for name in prices if bare.startswith(name)]
    return prices[max(matches, key=len)] if matches else None


def cost_usd(prices: dict[str, tuple[float, float]], model: str, tokens_in: int, tokens_out: int) -> float | None:
    price = price_of(prices, model)
    if price is None:
        return None
    return (tokens_in * price[0] + tokens_out * price[1]) / 1_000_000
