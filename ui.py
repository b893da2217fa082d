"""The app's shared part: the cached store handle, page setup and the widgets every page uses (the `ui_*.py`
modules hold those of one page or panel)."""

from __future__ import annotations

import os

import streamlit as st

from fireact_core.curation import cards as cards
from fireact_core.curation.edits import md_escape
from fireact_core.errors import FireactError
from fireact_core.records import Lint, Step, Trajectory
from fireact_core.reports.tables import table_html
from fireact_core.store import Store, resolve_db_path

import ui_team


# the app keeps the database open this long after its last read, so clicks answer without reopening it; another
# process of this package that waits for the file gets it as soon as no page is running (store/connection.py)
LINGER_S = 10.0


@st.cache_resource(show_spinner=False)
def _store(path: str) -> Store:
    return Store(path, linger=LINGER_S)


def get_store() -> Store:
    """The database named by $FIREACT_DB (else fireact.duckdb), opened once per process."""
    return _store(resolve_db_path(os.environ.get("FIREACT_DB")))


def _through_navigation() -> None:
    """Run a page through app.py's `st.navigation` (Home first, Material icons). Until some session has run
    app.py, Streamlit serves a page opened by its address from the pages/ folder alone, with that folder's own
    sidebar (whose first entry reads "app"); switch the process to app.py's navigation and run again."""
    from streamlit.runtime import Runtime
    from streamlit.runtime.pages_manager import PagesManager

    served = st.runtime.exists() and type(Runtime.instance()) is Runtime  # not under AppTest's stand-in runtime
    if served and PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def page_setup(title: str, icon: str = ":material/local_fire_department:") -> Store:
    _through_navigation()
    st.set_page_config(page_title=f"{title} · FireAct Studio", page_icon=icon, layout="wide")
    try:
        store = get_store()
    except FireactError as exc:
        show_error(exc)
        st.stop()
    ui_team.sign_in(store)
    return store


def annotator() -> str:
    """Who is signed in: the OS user, the proxy's header or the sign-in, per $FIREACT_AUTH (docs/deploy.md)."""
    return ui_team.signed_in(get_store())


def show_error(error: object) -> None:
    """An error message shown as the text it is: markdown, HTML and directive characters escaped (file names,
    brackets and underscores in messages stay literal)."""
    st.error(md_escape(error))


def trajectory_header(traj: Trajectory, lints: list[Lint] = (), review: str | None = None) -> None:
    """Question, gold, answer, EM and F1 of a trajectory, with its source and lints (the reading view's top)."""
    st.html(cards.header_html(traj, lints, review))


def step_cards(steps: list[Step], lints: list[Lint] = (), first: int = 0) -> None:
    """The reading view's compact step cards (the same on Trajectory, Review and Compare)."""
    if steps:
        st.html(cards.steps_html(steps, lints, first))


def confirm(key: str, question: str, label: str, action, *args) -> None:
    """Ask before a bulk action: `question` with `label` (runs `action(*args)`) and Cancel, under `key`."""
    with st.container(border=True):
        st.warning(question, icon=":material/warning:")
        with st.container(horizontal=True):  # the buttons as wide as their labels, in a panel of any width
            st.button(label, key=f"{key}:yes", type="primary", on_click=_confirmed, args=(key, action, *args))
            st.button("Cancel", key=f"{key}:no", on_click=st.session_state.pop, args=(key, None))


def _confirmed(key: str, action, *args) -> None:
    st.session_state.pop(key, None)
    action(*args)


def panel_on_demand(label: str, key: str, icon: str | None = None, holds: tuple[str, ...] = ()):
    """An expander whose content is drawn only while it is open (it reruns the page when opened or closed), so a
    page's first render does not pay for widgets that are rarely touched. Returns the expander while it is open,
    else None.

    Widgets inside it take `persist_state="page"`, so their values hold while it is closed. `holds` names their
    keys: the run that opens the panel sets their values again before they are drawn. Streamlit drops the value
    of such a widget the next time it is drawn after the page was left, unless that run set it, so without this a
    value the page set (from the address, a default, a loaded version) would give way to the widget's own default
    when the panel opens after a visit to another page. Only the opening run does it: setting a value sends it to
    the browser again, over anything being typed into that field at the time."""
    ss = st.session_state
    panel = st.expander(label, key=key, on_change="rerun", icon=icon)
    if not panel.open:
        ss[f"{key}:drawn"] = False
        return None
    if not ss.get(f"{key}:drawn"):
        for name in holds:
            if name in ss:
                ss[name] = ss[name]
    ss[f"{key}:drawn"] = True
    return panel


def plain_table(rows, test_id: str = "fa-table") -> None:
    """A few rows nobody selects (a frame, or dicts sharing their keys), drawn as a plain HTML table."""
    st.html(table_html(rows, test_id))
