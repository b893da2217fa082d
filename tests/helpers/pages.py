"""AppTest pages opened as a signed-in user (the oidc sign-in of `signed_in_pages_database`)."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT


def open_page(name: str, who: str = "alice", **params: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page(f"pages/{name}")
    at.user = {"is_logged_in": True, "email": who}
    for key, value in params.items():
        at.query_params[key] = value
    return at.run()


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def button(at: AppTest, label: str):
    """The page's first button labelled `label`, alone or after an icon (an assertion naming the labels there when
    none is)."""
    matches = [b for b in at.button if b.label == label or b.label.endswith(" " + label)]
    assert matches, f"no button {label!r} in {[b.label for b in at.button]}"
    return matches[0]
