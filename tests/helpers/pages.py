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


def plain_tables(at: AppTest) -> list:
    """The page's plain HTML tables (ui.plain_table) as frames, in page order; cells that read as numbers become
    numbers, empty cells None."""
    from html.parser import HTMLParser

    import pandas as pd

    class Tables(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tables: list[tuple[list[str], list[list]]] = []
            self.cell: list[str] | None = None

        def handle_starttag(self, tag, attrs):
            if tag == "table" and ("class", "fa-table") in attrs:
                self.tables.append(([], []))
            elif tag == "tr" and self.tables:
                self.row: list = []
            elif tag in ("th", "td") and self.tables:
                self.cell = []

        def handle_data(self, data):
            if self.cell is not None:
                self.cell.append(data)

        def handle_endtag(self, tag):
            if tag in ("th", "td") and self.cell is not None:
                text = "".join(self.cell)
                self.cell = None
                if tag == "th":
                    self.tables[-1][0].append(text)
                else:
                    self.row.append(_number(text))
            elif tag == "tr" and self.tables and self.row:
                self.tables[-1][1].append(self.row)
                self.row = []

    parser = Tables()
    for block in at.get("html"):
        if "fa-table" in block.proto.body:
            parser.feed(block.proto.body)
    return [pd.DataFrame(rows, columns=head) for head, rows in parser.tables]


def _number(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text or None


def pick_tables(at: AppTest) -> dict[str, dict]:
    """The page's picking tables (ui_table.pick_table), by key: what each draws (columns, cell texts, titles)."""
    import json

    return {el.proto.id.rsplit("-", 1)[-1]: json.loads(el.proto.json) for el in at.get("bidi_component")
            if el.proto.component_name == "fireact.pick_table"}


def pick(at: AppTest, key: str, rows: list[int]) -> AppTest:
    """Select `rows` of the picking table `key` as a click in the browser does, and run the page."""
    drawn = pick_tables(at)[key]
    at.session_state[key] = {"picked": {"sig": drawn["sig"], "rows": rows}}
    return at.run()


def pick_frames(at: AppTest) -> dict:
    """The page's picking tables as frames of what they show, by key; cells that read as numbers become numbers
    (scores as shown, to three places), empty cells None."""
    import pandas as pd

    return {key: pd.DataFrame([[_number(c) for c in row] for row in drawn["rows"]],
                              columns=[c["name"] for c in drawn["columns"]])
            for key, drawn in pick_tables(at).items()}


def click_cell(at: AppTest, key: str, row: int, column: str) -> AppTest:
    """Click a cell of the picking table `key` (one of the Dashboard's) as in the browser, and run the page."""
    drawn = pick_tables(at)[key]
    at.session_state[key] = {"cell": {"sig": drawn["sig"], "row": row, "column": column, "at": row * 1000 + len(column)}}
    return at.run()
