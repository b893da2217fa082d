"""Keeping secrets out of everything written: the database, logs, run folders and exports.

- credentials in a URL (`http://user:password@host/...`) are stripped wherever a URL appears in a text;
- API keys are masked in every form they take in a URL: as they are, percent-encoded (`a/b+c=` as
  `a%2Fb%2Bc%3D`, upper or lower case hex, `+` for spaces), and in a query parameter that names a key;
- the keys are those of the environment (OPENAI_API_KEY, SERPAPI_API_KEY, SERPAPI_KEY) and those `remember`
  was given in this process (a run's keys, a password found in a URL).

The store calls `redact_text` / `redact_value` on what it writes that may carry them (run settings, events,
errors, observations, job and model configs); the run-folder writers do the same.
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit

MASK = "***"
ENV_KEYS = ("OPENAI_API_KEY", "SERPAPI_API_KEY", "SERPAPI_KEY")
MIN_SECRET = 8  # shorter values ("EMPTY", "none") are placeholders, not secrets worth masking everywhere
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@\"'<>]+@")
_KEY_PARAM = re.compile(r"(?i)([?&](?:api_key|apikey|access_token|password)=)[^&#\s\"'<>]+")
_remembered: set[str] = set()
_lock = threading.Lock()


def remember(*values: str | None) -> None:
    """Secrets of this process (a run's API keys, a URL's password) to mask from now on."""
    with _lock:
        _remembered.update(v for v in values if v and len(v) >= MIN_SECRET)


def url_password(url: str | None) -> str | None:
    """The password of a URL's credentials, if it has one."""
    try:
        return urlsplit(url).password if url else None
    except ValueError:
        return None


def _drop_credentials(match: re.Match) -> str:
    userinfo = match.group(0)[len(match.group(1)):-1]
    remember(userinfo.partition(":")[2])
    return match.group(1)


def strip_url(url: str | None) -> str | None:
    """A URL without its user and password."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return _URL_CREDENTIALS.sub(r"\1", url)
    if parts.username is None and parts.password is None:
        return url
    remember(parts.password)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=host))


def forms(secret: str) -> set[str]:
    """The ways a secret can be written in a URL or a text."""
    out = {secret}
    for encoded in (quote(secret, safe=""), quote_plus(secret, safe=""), quote(secret)):
        out.add(encoded)
        out.add(re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), encoded))
    return out


def known_secrets() -> list[str]:
    """Every secret to mask, longest first (one that holds another is masked whole)."""
    values = {os.environ.get(k) for k in ENV_KEYS}
    with _lock:
        values |= _remembered
    found = {f for v in values if v and len(v) >= MIN_SECRET for f in forms(v)}
    return sorted(found, key=len, reverse=True)


def redact_text(text: str | None, secrets: list[str] | None = None) -> str | None:
    """`text` with URL credentials stripped, key parameters and known secrets masked."""
    if not text:
        return text
    secrets = known_secrets() if secrets is None else secrets
    if "://" in text:
        text = _URL_CREDENTIALS.sub(_drop_credentials, text)
    if "=" in text:
        text = _KEY_PARAM.sub(r"\1" + MASK, text)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_value(value: Any, secrets: list[str] | None = None) -> Any:
    """`redact_text` of every string in a JSON-like value (dict keys stay)."""
    secrets = known_secrets() if secrets is None else secrets
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, dict):
        return {k: redact_value(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v, secrets) for v in value]
    return value


def redact_trajectory(traj: Any, secrets: list[str] | None = None) -> Any:
    """A `Trajectory` with its error, answers, steps and meta redacted (the same object when nothing changed)."""
    secrets = known_secrets() if secrets is None else secrets
    steps = [s.model_copy(update={k: redact_text(getattr(s, k), secrets)
                                  for k in ("thought", "observation", "raw", "obs_raw")})
             for s in traj.steps]
    for old, new in zip(traj.steps, steps):
        if old.action is not None:
            new.action = old.action.model_copy(update={"raw": redact_text(old.action.raw, secrets),
                                                       "arg": redact_text(old.action.arg, secrets)})
    return traj.model_copy(update={"error": redact_text(traj.error, secrets), "steps": steps,
                                   "final_answer": redact_text(traj.final_answer, secrets),
                                   "meta": redact_value(traj.meta, secrets)})
