"""Who is acting: the identity modes of the app and of the command line.

`FIREACT_AUTH` chooses the app's mode:
- `local` (default): the operating-system user that runs the app; the app listens on 127.0.0.1 only;
- `header:NAME`: the user name a trusted reverse proxy (oauth2-proxy, nginx) puts in the request header NAME;
  a request without it is refused;
- `oidc`: Streamlit's own sign-in (`st.login`, configured in .streamlit/secrets.toml); the e-mail claim names
  the user.
The command line is always the operating-system user (`--as NAME` acts for someone else, admins only).
Nothing here imports streamlit: the UI hands over the request's headers and the signed-in user's claims.
"""

from __future__ import annotations

import getpass
import os
import re
from dataclasses import dataclass
from typing import Any, Literal, Mapping

from ...errors import FireactError

AUTH_ENV = "FIREACT_AUTH"
MAX_NAME = 200
_BAD_NAME = re.compile(r"[\x00-\x1f\x7f]")
OIDC_CLAIMS = ("email", "preferred_username", "name", "sub")


class AccessDenied(FireactError):
    """The acting user may not do this; the message says who they are, what was refused and why."""


class SignInRequired(AccessDenied):
    """No identity could be established for a request (no proxy header, not signed in)."""


@dataclass(frozen=True)
class AuthMode:
    kind: Literal["local", "header", "oidc"] = "local"
    header: str | None = None

    @property
    def team(self) -> bool:
        """Whether identities come from outside (a proxy or a sign-in) rather than the machine's user."""
        return self.kind != "local"

    def describe(self) -> str:
        return f"header:{self.header}" if self.kind == "header" else self.kind


def auth_mode(value: str | None = None) -> AuthMode:
    """The mode named by `value`, else by $FIREACT_AUTH, else local."""
    text = (value if value is not None else os.environ.get(AUTH_ENV, "")).strip()
    if text in ("", "local"):
        return AuthMode()
    if text == "oidc":
        return AuthMode("oidc")
    kind, _, header = text.partition(":")
    if kind == "header" and re.fullmatch(r"[A-Za-z0-9-]+", header.strip()):
        return AuthMode("header", header.strip())
    raise FireactError(f"{AUTH_ENV}={text!r}: expected local, header:HEADER-NAME (e.g. header:X-Forwarded-User) or oidc")


def check_name(name: str, where: str) -> str:
    """A user name as given by `where`, stripped; refused when empty, too long or holding control characters."""
    name = (name or "").strip()
    if not name:
        raise SignInRequired(f"{where} gives no user name")
    if len(name) > MAX_NAME or _BAD_NAME.search(name):
        raise SignInRequired(f"{where} gives a user name that is too long or holds control characters")
    return name


def local_user() -> str:
    """The operating-system user running this process."""
    try:
        return check_name(getpass.getuser(), "the operating system")
    except (KeyError, OSError) as exc:
        raise SignInRequired(f"cannot tell the operating-system user ({exc}): set $USER") from exc


def identify(mode: AuthMode, headers: Mapping[str, str] | None = None, user: Mapping[str, Any] | None = None) -> str:
    """The acting user's name for one request: the OS user, the proxy's header, or the signed-in user's claim."""
    if mode.kind == "local":
        return local_user()
    if mode.kind == "header" and mode.header is not None:
        wanted = mode.header.lower()
        value = next((v for k, v in (headers or {}).items() if k.lower() == wanted), None)
        if not value or not str(value).strip():
            raise SignInRequired(f"this server takes the user from the {mode.header} header that its proxy sets, and "
                                 "this request has none: open the app through the proxy's address, not its own port")
        return check_name(str(value), f"the {mode.header} header")
    if not user or not user.get("is_logged_in"):
        raise SignInRequired("sign in to use this server")
    claim = next((user[c] for c in OIDC_CLAIMS if user.get(c)), None)
    if claim is None:
        raise SignInRequired(f"the sign-in gives none of the claims {', '.join(OIDC_CLAIMS)} to name the user")
    return check_name(str(claim), "the sign-in")
