"""The only module besides the pages that imports streamlit: the cached store handle and shared widgets."""

from __future__ import annotations

import os

import streamlit as st

from fireact_core.errors import FireactError
from fireact_core.store import Store, resolve_db_path


@st.cache_resource(show_spinner=False)
def _store(path: str) -> Store:
    return Store(path)


def get_store() -> Store:
    """The database named by $FIREACT_DB (else fireact.duckdb), opened once per process."""
    return _store(resolve_db_path(os.environ.get("FIREACT_DB")))


def page_setup(title: str, icon: str = "🔥") -> Store:
    st.set_page_config(page_title=f"{title} · FireAct Studio", page_icon=icon, layout="wide")
    try:
        return get_store()
    except FireactError as exc:
        st.error(str(exc))
        st.stop()


def annotator() -> str:
    """The annotator's name, set once per browser session in the sidebar."""
    name = st.sidebar.text_input("Annotator", key="annotator", value=st.session_state.get("annotator", ""),
                                 placeholder="your name")
    return name.strip() or "anonymous"


def show_error(exc: FireactError) -> None:
    st.error(str(exc))
