"""`fireact`: the command line. Each module here adds its subcommands; all of them call fireact_core."""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import sys
from typing import Any, Callable, get_args

from ..errors import FireactError

COMMAND_MODULES = ["data", "demo", "curation", "generate", "fork", "mix", "train", "report", "team"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fireact", description="FireAct Studio: agent trajectories in and out.")
    parser.add_argument("--db", help="database file (default: $FIREACT_DB, else fireact.duckdb here)")
    parser.add_argument("--as", dest="as_user", metavar="NAME",
                        help="act as this user (admins only; default: the operating-system user)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    LazyChoices.building = True
    try:
        for name in COMMAND_MODULES:
            importlib.import_module(f"{__name__}.{name}").register(sub)
    finally:
        LazyChoices.building = False
    return parser


class LazyChoices:
    """argparse `choices` held by a module that is heavy to import: imported only when a value is checked or a
    command's own help is printed, so `fireact --help` and the other commands never pay for it. (While the
    parser is being built, argparse formats every argument once to check it; then there is nothing to list.)
    `name` is a collection of names (a registry's dict gives its keys), a function that returns one, or
    "Model.field": the values of a pydantic model's `Literal` field."""

    building = False

    def __init__(self, module: str, name: str, extra: tuple[str, ...] = ()):
        self.module, self.name, self.extra = module, name, extra

    def _values(self) -> list[str]:
        if LazyChoices.building:
            return []
        owner: Any = importlib.import_module(self.module)
        if "." in self.name:
            model, field = self.name.split(".")
            values: Any = get_args(getattr(owner, model).model_fields[field].annotation)
        else:
            values = getattr(owner, self.name)
        return [*(values() if callable(values) else values), *self.extra]

    def __contains__(self, value: object) -> bool:
        return value in self._values()

    def __iter__(self):
        return iter(self._values())

    def __len__(self) -> int:
        return len(self._values())


def open_store(args: argparse.Namespace):
    from ..store import Store

    return Store(args.db)


def user_of(args: argparse.Namespace, store) -> str:
    """Who runs this command: --as (or a command's --author), else the operating-system user."""
    from ..curation.team import acting_user

    return acting_user(store, getattr(args, "as_user", None) or getattr(args, "author", None))


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int | None] = args.handler
    from .terminal import SafeOutput, escape

    stdout, sys.stdout = sys.stdout, SafeOutput(sys.stdout)
    try:
        return handler(args) or 0
    except FireactError as exc:
        print(f"fireact: error: {escape(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fireact: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        sys.stderr.close()
        return 0
    finally:
        sys.stdout = stdout
        if argv is None:  # the program ends here: its objects need no last garbage collection on the way out
            gc.freeze()


if __name__ == "__main__":
    sys.exit(main())
