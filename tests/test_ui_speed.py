"""What keeps the app quick without changing what it shows: the server compiles page scripts as written (no
"magic" rewrite of each script, which walks its whole syntax tree again whenever the server's last session
closes), no page relies on magic to display a bare expression, and no run of a page ends with a full garbage
collection of the process."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.conftest import ROOT

SCRIPTS = [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py"))]


def test_the_server_started_in_the_repository_compiles_scripts_without_magic():
    code = ("from streamlit import config; config.get_config_options(force_reparse=True); "
            "print(config.get_option('runner.magicEnabled'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_server_started_in_the_repository_collects_no_garbage_after_each_run():
    code = ("from streamlit import config; config.get_config_options(force_reparse=True); "
            "print(config.get_option('runner.postScriptGC'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def bare_expressions(path) -> list[int]:
    """Lines of expression statements that Streamlit's magic would have shown with st.write: anything but a
    call, a yield, an await or a docstring."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        for field in ("body", "orelse", "finalbody"):
            body = getattr(node, field, None)
            if not isinstance(body, list):
                continue
            for i, stmt in enumerate(body):
                if not isinstance(stmt, ast.Expr) or isinstance(stmt.value, (ast.Call, ast.Await, ast.Yield)):
                    continue
                docstring = i == 0 and isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef))
                if docstring and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
                    continue
                lines.append(stmt.lineno)
    return lines


def test_no_page_shows_anything_through_magic():
    assert SCRIPTS and all(p.exists() for p in SCRIPTS)
    found = {p.name: bare_expressions(p) for p in SCRIPTS}
    assert not any(found.values()), found


def test_the_check_finds_a_bare_expression(tmp_path):
    page = tmp_path / "page.py"
    page.write_text('"""Doc."""\nimport streamlit as st\nx = 1\nx\nst.write(x)\nif x:\n    "shown by magic"\n')
    assert bare_expressions(page) == [4, 7]
