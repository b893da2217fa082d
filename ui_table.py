"""The picking table: rows to select (one, or several with check boxes), a link cell that opens its row, or cells
to click (the Dashboard's, each opening the trajectories behind it), drawn as a plain HTML table by a small script
(a Streamlit component). It loads and draws in a fraction of the data grid's time, and every cell is set as text,
never as HTML. The cells come from `fireact_core.reports.tables`.

Keyboard: Tab reaches each row (each cell, when cells are clicked), Space or Enter selects it; a link cell opens
with Enter."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from fireact_core.reports.tables import Column, pick_payload

JS = r"""
export default function (component) {
  const { data, parentElement, setStateValue, setTriggerValue } = component;
  let root = parentElement.querySelector(':scope > .fa-pick');
  if (!root) {
    root = document.createElement('div');
    root.className = 'fa-pick';
    parentElement.appendChild(root);
  }
  root.setAttribute('data-testid', data.testid);
  root.style.maxHeight = data.maxHeight ? data.maxHeight + 'px' : '';
  const cols = data.columns, rows = data.rows, titles = data.titles, mode = data.select, open = data.open;
  let picked = new Set(data.picked);
  const table = document.createElement('table');
  table.style.minWidth = (data.minWidth + (mode === 'multi' ? 34 : 0)) + 'px';
  const group = table.appendChild(document.createElement('colgroup'));
  const width = (px) => { const col = group.appendChild(document.createElement('col')); if (px) col.style.width = px + 'px'; };
  if (mode === 'multi') width(34);
  cols.forEach((c) => width(c.width));
  const head = table.createTHead().insertRow();
  let all = null;
  if (mode === 'multi') {
    const th = document.createElement('th');
    all = document.createElement('input');
    all.type = 'checkbox';
    all.setAttribute('aria-label', 'select every row');
    th.appendChild(all);
    head.appendChild(th);
  }
  for (const c of cols) {
    const th = document.createElement('th');
    th.textContent = c.name;
    th.title = c.help ? c.name + ': ' + c.help : c.name;
    if (c.right) th.className = 'fa-r';
    head.appendChild(th);
  }
  const body = table.createTBody();
  const send = () => setStateValue('picked', { sig: data.sig, rows: [...picked].sort((a, b) => a - b) });
  const paint = () => {
    body.querySelectorAll('tr').forEach((tr, i) => {
      const on = picked.has(i);
      tr.classList.toggle('fa-on', on);
      if (mode === 'single' || mode === 'multi') tr.setAttribute('aria-selected', String(on));
      const box = tr.querySelector('input');
      if (box) box.checked = on;
    });
    if (all) {
      all.checked = rows.length > 0 && picked.size === rows.length;
      all.indeterminate = picked.size > 0 && picked.size < rows.length;
    }
  };
  const toggle = (i) => {
    if (mode === 'multi') { if (picked.has(i)) picked.delete(i); else picked.add(i); }
    else picked = new Set(picked.has(i) ? [] : [i]);
    paint();
    send();
  };
  rows.forEach((cells, i) => {
    const tr = body.insertRow();
    tr.setAttribute('data-testid', 'fa-pick-row');
    if (mode === 'multi') {
      const box = document.createElement('input');
      box.type = 'checkbox';
      box.tabIndex = -1;
      box.setAttribute('aria-label', 'select row ' + (i + 1));
      tr.insertCell().appendChild(box);
    }
    cells.forEach((text, k) => {
      const td = tr.insertCell();
      if (mode === 'cell' && k >= data.fixed) {
        td.tabIndex = 0;
        td.className = 'fa-cell';
        const click = () => {
          body.querySelectorAll('td.fa-on').forEach((x) => x.classList.remove('fa-on'));
          td.classList.add('fa-on');
          setStateValue('cell', { sig: data.sig, row: i, column: cols[k].name, at: Date.now() });
        };
        td.onclick = click;
        td.onkeydown = (e) => { if (e.key === ' ' || e.key === 'Enter') { e.preventDefault(); click(); } };
      }
      if (k === open) {
        const a = document.createElement('a');
        a.href = '#';
        a.textContent = text;
        a.onclick = (e) => { e.preventDefault(); e.stopPropagation(); setTriggerValue('open', i); };
        a.onkeydown = (e) => { if (e.key === 'Enter' || e.key === ' ') e.stopPropagation(); };
        td.appendChild(a);
      } else {
        td.textContent = text;
      }
      const hover = titles[k] ? titles[k][i] : text;
      if (hover) td.title = hover;
      if (cols[k].right) td.classList.add('fa-r');
    });
    if (mode === 'single' || mode === 'multi') {
      tr.tabIndex = 0;
      tr.onclick = () => toggle(i);
      tr.onkeydown = (e) => { if (e.target === tr && (e.key === ' ' || e.key === 'Enter')) { e.preventDefault(); toggle(i); } };
    }
  });
  if (all) all.onclick = (e) => {
    e.stopPropagation();
    picked = all.checked ? new Set(rows.map((_, i) => i)) : new Set();
    paint();
    send();
  };
  paint();
  root.replaceChildren(table);
}
"""
CSS = """
.fa-pick { overflow: auto; border: 1px solid rgba(49, 51, 63, .15); border-radius: .5rem; }
.fa-pick table { border-collapse: collapse; width: 100%; table-layout: fixed; font-size: .875rem; line-height: 1.35; }
.fa-pick th { position: sticky; top: 0; z-index: 1; background: var(--st-secondary-background-color, #f0f2f6);
  font-weight: 400; color: rgba(49, 51, 63, .7); text-align: left; }
.fa-pick th, .fa-pick td { padding: .3rem .5rem; border-bottom: 1px solid rgba(49, 51, 63, .08);
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.fa-pick .fa-r { text-align: right; font-variant-numeric: tabular-nums; }
.fa-pick tbody tr[tabindex], .fa-pick td.fa-cell { cursor: pointer; }
.fa-pick td.fa-cell:hover { background: rgba(255, 75, 75, .06); }
.fa-pick td.fa-on { background: rgba(255, 75, 75, .12); }
.fa-pick td:focus-visible { outline: 2px solid var(--st-primary-color, #ff4b4b); outline-offset: -2px; }
.fa-pick tbody tr:hover { background: rgba(49, 51, 63, .04); }
.fa-pick tbody tr.fa-on { background: rgba(255, 75, 75, .09); }
.fa-pick tbody tr:focus-visible { outline: 2px solid var(--st-primary-color, #ff4b4b); outline-offset: -2px; }
.fa-pick input { margin: 0; cursor: pointer; accent-color: var(--st-primary-color, #ff4b4b); }
.fa-pick a { color: inherit; text-decoration: underline; text-decoration-color: rgba(49, 51, 63, .35); }
"""
_component = st.components.v2.component("fireact.pick_table", js=JS, css=CSS, isolate_styles=False)


@dataclass
class Picked:
    """What the person did with a picking table: the rows selected (indices into the rows given, in order), the
    row whose link cell was clicked and the cell (row, column name) clicked, each on the run that click started
    only (else None)."""

    rows: list[int] = field(default_factory=list)
    opened: int | None = None
    cell: tuple[int, str] | None = None


def _ignore() -> None:
    """The component's callbacks: its values are read where the table is drawn."""


def pick_table(rows: list[Mapping[str, Any]], key: str, *, columns: Mapping[str, Column] | None = None,
               titles: Mapping[str, list[str]] | None = None, select: str | None = None,
               open_column: str | None = None, fixed: int = 0, max_height: int | None = 420,
               test_id: str = "fa-pick-table") -> Picked:
    """Draw `rows` (dicts sharing their keys); `select`: None, "single" or "multi" (rows), or "cell" (every cell but
    those of the first `fixed` columns can be clicked); `open_column`: the column whose cells are links that open
    their row. A selection survives reruns while the same rows are shown; a cell's click is reported once."""
    payload = pick_payload(list(rows), columns, titles)
    names = [c["name"] for c in payload["columns"]]
    state = st.session_state.get(key)
    state = state if isinstance(state, Mapping) else {}
    kept = state.get("picked")
    ours = isinstance(kept, Mapping) and kept.get("sig") == payload["sig"] and isinstance(kept.get("rows"), list)
    chosen = [i for i in kept["rows"] if isinstance(i, int) and 0 <= i < len(rows)] \
        if ours and select in ("single", "multi") else []
    if select == "single":
        chosen = chosen[:1]
    payload.update(select=select, open=names.index(open_column) if open_column in names else -1, picked=chosen,
                   fixed=fixed, maxHeight=max_height, testid=test_id)
    result = _component(data=payload, key=key, default={"picked": None, "cell": None}, on_picked_change=_ignore,
                        on_cell_change=_ignore, on_open_change=_ignore)
    opened = result.get("open") if isinstance(result, Mapping) else getattr(result, "open", None)
    return Picked(rows=chosen, opened=opened if isinstance(opened, int) and 0 <= opened < len(rows) else None,
                  cell=_new_cell(key, state.get("cell"), payload["sig"], names, len(rows)))


def _new_cell(key: str, cell: Any, sig: str, names: list[str], n_rows: int) -> tuple[int, str] | None:
    """The cell clicked among the rows shown, the first time a run sees that click (a rerun for another reason
    does not repeat it)."""
    if not (isinstance(cell, Mapping) and cell.get("sig") == sig and cell.get("column") in names
            and isinstance(cell.get("row"), int) and 0 <= cell["row"] < n_rows):
        return None
    seen = f"{key}:cell_seen"
    if st.session_state.get(seen) == cell.get("at"):
        return None
    st.session_state[seen] = cell.get("at")
    return cell["row"], cell["column"]
