"""FireAct's robustness setting: with probability p, an observation is replaced by "None" or by a random
earlier observation. Whether a step is perturbed depends only on (seed, question, step), so a resumed or
repeated run perturbs the same steps."""

from __future__ import annotations

import hashlib
import random

from ...errors import FireactError

MODES = ("none", "random")


def parse_perturb(spec: str | None) -> tuple[str | None, float]:
    """"none:0.5" or "random:0.2" -> (mode, p); None, "" or "off" -> (None, 0)."""
    if not spec or spec in ("off", "clean"):
        return None, 0.0
    mode, _, p = spec.partition(":")
    try:
        prob = float(p) if p else 0.5
    except ValueError:
        raise FireactError(f"--perturb {spec}: the probability after ':' must be a number such as none:0.5") from None
    if mode not in MODES or not 0.0 <= prob <= 1.0:
        raise FireactError(f"--perturb {spec}: expected none:P or random:P with P between 0 and 1")
    return mode, prob


class Perturber:
    def __init__(self, mode: str | None = None, p: float = 0.0, seed: int = 0):
        self.mode, self.p, self.seed = mode, p, seed
        self.pool: list[str] = []

    def _rng(self, key: tuple) -> random.Random:
        digest = hashlib.blake2b(repr((self.seed, *key)).encode(), digest_size=8).digest()
        return random.Random(int.from_bytes(digest, "big"))

    def apply(self, observation: str, key: tuple, history: list[str]) -> tuple[str | None, str]:
        """(kind, new observation): kind is None when the observation is left alone."""
        if len(self.pool) < 1000:
            self.pool.append(observation)
        if not self.mode or self.p <= 0:
            return None, observation
        rng = self._rng(key)
        if rng.random() >= self.p:
            return None, observation
        if self.mode == "none":
            return "none", "None"
        earlier = [o for o in history + self.pool if o != observation]
        return "random", rng.choice(earlier) if earlier else "None"
