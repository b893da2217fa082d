"""`fireact`: the command line. Each module here adds its subcommands; all of them call fireact_core."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any, Callable

from ..errors import FireactError

COMMAND_MODULES = ["data", "demo", "curation", "generate", "mix", "train", "report", "team"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fireact", description="FireAct Studio: agent trajectories in and out.")
    parser.add_argument("--db", help="database file (default: $FIREACT_DB, else fireact.duckdb here)")
    parser.add_argument("--as", dest="as_user", metavar="NAME",
                        help="act as this user (admins only; default: the operating-system user)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def open_store(args: argparse.Namespace):
    from ..store import Store

    return Store(args.db)


def user_of(args: argparse.Namespace, store) -> str:
    """Who runs this command: --as (or a command's --author), else the operating-system user."""
    from ..team import acting_user

    return acting_user(store, getattr(args, "as_user", None) or getattr(args, "author", None))


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int | None] = args.handler
    try:
        return handler(args) or 0
    except FireactError as exc:
        print(f"fireact: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fireact: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
