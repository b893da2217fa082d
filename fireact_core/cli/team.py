"""users, assign, progress, agreement and adjudicate: team curation on the command line.

The command line acts as the operating-system user; `fireact --as NAME COMMAND` acts as NAME, which only an
admin may do (or anyone while the database has no users)."""

from __future__ import annotations

import argparse
from typing import Any

from ..curation.team.roles import ROLES
from . import open_store, print_json, user_of
from .curation import _add_filter, _filter


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("users", help="list users and their roles; add one, change a role, remove one")
    p.add_argument("--json", action="store_true")
    actions = p.add_subparsers(dest="users_action", metavar="ACTION")
    a = actions.add_parser("add", help="register a user, or change their role (admins; the first user must be an admin)")
    a.add_argument("name")
    a.add_argument("--role", required=True, choices=ROLES)
    r = actions.add_parser("remove", help="remove a user (admins)")
    r.add_argument("name")
    p.set_defaults(handler=cmd_users)

    p = sub.add_parser("assign", help="give each trajectory of a filter (or the given ids) K annotators, balanced")
    p.add_argument("ids", nargs="*", metavar="ID")
    _add_filter(p)
    p.add_argument("--to", required=True, help="annotators, comma-separated: a,b,c")
    p.add_argument("--overlap", type=int, default=1, help="annotators per trajectory (default 1)")
    p.add_argument("--remove", action="store_true", help="take the trajectories off these annotators' queues instead")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_assign)

    p = sub.add_parser("progress", help="per annotator: assigned, done, reviewed (within a filter)")
    _add_filter(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_progress)

    p = sub.add_parser("agreement", help="percent agreement, Cohen's kappa per pair, Fleiss' kappa overall")
    _add_filter(p)
    p.add_argument("--on-label", metavar="LABEL", help="agreement on this label (given or not) instead of on accept/reject")
    p.add_argument("--disagreements", action="store_true", help="list the trajectories waiting for adjudication")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_agreement)

    p = sub.add_parser("adjudicate", help="an admin's final decision on a disputed trajectory")
    p.add_argument("id", metavar="ID")
    decision = p.add_mutually_exclusive_group(required=True)
    decision.add_argument("--accept", action="store_true")
    decision.add_argument("--reject", action="store_true")
    p.add_argument("--label", action="append", metavar="LABEL", help="its labels (default: those most annotators gave)")
    p.add_argument("--note", help="why")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_adjudicate)


def cmd_users(args: argparse.Namespace) -> int:
    from ..curation.team import add_user, remove_user

    store = open_store(args)
    if args.users_action == "add":
        add_user(store, user_of(args, store), args.name, args.role)
    elif args.users_action == "remove":
        remove_user(store, user_of(args, store), args.name)
    users = store.list_users()
    if args.json:
        print_json([{"name": u.name, "role": u.role, "created_at": u.created_at.isoformat()} for u in users])
    elif not users:
        print("no users: everyone acts as an admin until the first one is added (fireact users add NAME --role admin)")
    for u in users if not args.json else []:
        print(f"{u.name:30.30} {u.role:10} {u.created_at:%Y-%m-%d %H:%M} UTC")
    return 0


def cmd_assign(args: argparse.Namespace) -> int:
    from ..curation.team import assign as asg

    store = open_store(args)
    who = user_of(args, store)
    ids = store.filter_ids(_filter(args, args.ids))
    if args.remove:
        n = asg.unassign(store, who, ids, asg.parse_names(args.to))
        out: dict[str, Any] = {"trajectories": len(ids), "removed": n}
    else:
        out = asg.assign(store, who, ids, asg.parse_names(args.to), args.overlap)
    if args.json:
        print_json(out)
    elif args.remove:
        print(f"{out['removed']} assignments removed over {out['trajectories']} trajectories")
    else:
        per = ", ".join(f"{a} {n}" for a, n in out["per_annotator"].items())
        print(f"{out['added']} assignments added over {out['trajectories']} trajectories: {per}")
    return 0


def cmd_progress(args: argparse.Namespace) -> int:
    from ..curation.team.assign import progress

    rows = progress(open_store(args), _filter(args))
    if args.json:
        print_json(rows)
        return 0
    for r in rows:
        print(f"{r['annotator']:30.30} {r['done']:>6} of {r['assigned']:<6} assigned done, {r['reviewed']} reviewed in all")
    return 0


def cmd_agreement(args: argparse.Namespace) -> int:
    from ..curation.team import agreement as agr

    store = open_store(args)
    f = _filter(args)
    if args.disagreements:
        rows = agr.disagreements(store, f)
        if args.json:
            print_json(rows)
        for d in rows if not args.json else []:
            votes = "; ".join(f"{a}: {s or '-'} {','.join(d['labels'][a])}".strip() for a, s in d["votes"].items())
            print(f"{d['trajectory_id']}  {votes}  {(d['question'] or '')[:60]}")
        return 0
    report = agr.agreement(store, f, args.on_label)
    if args.json:
        print_json(report)
        return 0
    o = report["overall"]
    show = lambda x, fmt: "-" if x is None else format(x, fmt)  # noqa: E731
    print(f"{o['on']}: {o['items']} items rated by 2+ of {o['annotators']} annotators, agreement "
          f"{show(o['agreement'], '.1%')}, Fleiss' kappa {show(o['kappa'], '.3f')}")
    for p in report["pairs"]:
        print(f"  {p['a']} / {p['b']}: n={p['n']} agreement {show(p['agreement'], '.1%')} kappa {show(p['kappa'], '.3f')}")
    for label, x in o.get("labels", {}).items():
        print(f"  label {label}: {x['items']} items, agreement {show(x['agreement'], '.1%')} kappa {show(x['kappa'], '.3f')}")
    return 0


def cmd_adjudicate(args: argparse.Namespace) -> int:
    from ..curation.team.agreement import adjudicate

    store = open_store(args)
    ann = adjudicate(store, user_of(args, store), args.id, "accepted" if args.accept else "rejected",
                         args.label, args.note)
    if args.json:
        print_json(ann.model_dump(mode="json"))
    else:
        print(f"{args.id}: {ann.status} by {ann.author} (adjudicated, final)")
    return 0
