"""The only module besides the pages that imports streamlit: the cached store handle and shared widgets."""

from __future__ import annotations

import os

import streamlit as st

from fireact_core.errors import FireactError
from fireact_core.store import Store, resolve_db_path

import ui_team


@st.cache_resource(show_spinner=False)
def _store(path: str) -> Store:
    return Store(path)


def get_store() -> Store:
    """The database named by $FIREACT_DB (else fireact.duckdb), opened once per process."""
    return _store(resolve_db_path(os.environ.get("FIREACT_DB")))


def page_setup(title: str, icon: str = "🔥") -> Store:
    st.set_page_config(page_title=f"{title} · FireAct Studio", page_icon=icon, layout="wide")
    try:
        store = get_store()
    except FireactError as exc:
        st.error(str(exc))
        st.stop()
    ui_team.sign_in(store)
    return store


def annotator() -> str:
    """Who is signed in: the OS user, the proxy's header or the sign-in, per $FIREACT_AUTH (docs/deploy.md)."""
    return ui_team.signed_in(get_store())


def show_error(exc: FireactError) -> None:
    st.error(str(exc))
