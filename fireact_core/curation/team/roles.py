"""Roles and what each may do, checked here for the app and the command line alike.

- viewer: reads everything, writes nothing;
- annotator: reviews, labels and edits trajectories one at a time, imports, generates, mixes, trains;
- admin: besides, decides on a whole filter at once, deletes, manages users and roles, assigns work and
  adjudicates disagreements.

A database with no users is a single-user install: whoever uses it acts as an admin, as before roles existed.
The first user added must be an admin; from then on a name that is not registered is a viewer. The app in a
team mode (header or oidc) serves nobody until that first admin exists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from .identity import AccessDenied, check_name, local_user

if TYPE_CHECKING:
    from ...records import ReviewStatus, User
    from ...store import Store

ROLES = ("viewer", "annotator", "admin")
RANK = {role: i for i, role in enumerate(ROLES)}
# action: (least role, what it is, in words for a refusal)
ACTIONS: dict[str, tuple[str, str]] = {
    "annotate": ("annotator", "accepting, rejecting, labelling or commenting on a trajectory"),
    "edit": ("annotator", "saving an edit of a trajectory"),
    "import": ("annotator", "importing trajectories"),
    "generate": ("annotator", "starting a generation run"),
    "mix": ("annotator", "saving a dataset version"),
    "train": ("annotator", "starting a training job"),
    "prompt": ("annotator", "saving few-shot examples"),
    "bulk": ("admin", "a decision on every trajectory of a filter at once"),
    "delete": ("admin", "deleting"),
    "users": ("admin", "adding users and changing roles"),
    "assign": ("admin", "assigning trajectories to annotators"),
    "adjudicate": ("admin", "adjudicating a disagreement"),
    "act_as": ("admin", "acting as another user"),
}


def _a(role: str) -> str:
    return ("an " if role[0] in "aeiou" else "a ") + role


def role_of(store: Store, name: str) -> str:
    """The role of `name`: as registered; an admin while no user is registered; else a viewer."""
    role, users = store.user_standing(name)
    if role is not None:
        return role
    return "admin" if users == 0 else "viewer"


def allowed(store: Store, name: str, action: str) -> bool:
    return bool(name and name.strip()) and RANK[role_of(store, name)] >= RANK[ACTIONS[action][0]]


def require(store: Store, name: str, action: str) -> str:
    """The role of `name` when it may do `action`; else AccessDenied saying who they are, what needs which role
    and how to get it."""
    needed, what = ACTIONS[action]
    if not name or not name.strip():
        raise AccessDenied(f"{what} needs a known user, and none is signed in")
    role = role_of(store, name)
    if RANK[role] >= RANK[needed]:
        return role
    who = f"{name} is {_a(role)}" if store.user_role(name) else f"{name} is not a registered user, so a viewer"
    holders = "annotators and admins" if needed == "annotator" else "admins"
    raise AccessDenied(f"{who}: {what} is for {holders} (an admin grants it: fireact users add {name} --role {needed})")


def check_review(store: Store, name: str, ids: Iterable[str], action: str = "annotate") -> str:
    """`require` for a review decision on `ids`, which also refuses a non-admin on an adjudicated trajectory."""
    with store.session():
        role = require(store, name, action)
        final = store.adjudicated_ids(list(ids)) if role != "admin" else set()
    if final:
        first = store.adjudication(sorted(final)[0])
        by = first.decided_by if first is not None else "an admin"
        raise AccessDenied(f"{len(final)} of these trajectories ({', '.join(sorted(final)[:3])}) were adjudicated "
                           f"(by {by}): an admin's decision is final")
    return role


def add_user(store: Store, actor: str, name: str, role: str) -> User:
    """Register `name` with `role`, or change their role. The first user must be an admin; afterwards only
    admins manage users, and the last admin cannot step down."""
    if role not in ROLES:
        raise AccessDenied(f"role {role!r} is not one of {', '.join(ROLES)}")
    name = check_name(name, "the user name")
    if store.count_users() == 0:
        if role != "admin":
            raise AccessDenied(f"the first user must be an admin: fireact users add {actor or 'NAME'} --role admin")
    else:
        require(store, actor, "users")
        if role != "admin" and store.user_role(name) == "admin" and store.count_users("admin") == 1:
            raise AccessDenied(f"{name} is the only admin: make another admin first")
    store.save_user(name, role, actor)
    return next(u for u in store.list_users() if u.name == name)


def remove_user(store: Store, actor: str, name: str) -> None:
    require(store, actor, "delete")
    if store.user_role(name) is None:
        raise AccessDenied(f"{name} is not a registered user")
    if store.user_role(name) == "admin" and store.count_users("admin") == 1 and store.count_users() > 1:
        raise AccessDenied(f"{name} is the only admin: make another admin first")
    store.remove_user(name)


def acting_user(store: Store, as_user: str | None = None) -> str:
    """The command line's user: the operating-system user, or `as_user` when that user is an admin."""
    me = local_user()
    if not as_user or as_user.strip() == me:
        return me
    require(store, me, "act_as")
    return check_name(as_user, "--as")


def bulk_review(store: Store, who: str, ids: list[str], *, whole_filter: bool, status: ReviewStatus | None = None,
                add_labels: Iterable[str] = (), remove_labels: Iterable[str] = ()) -> int:
    """Accept, reject or label many trajectories: chosen ones need an annotator, a whole filter an admin."""
    check_review(store, who, ids, "bulk" if whole_filter else "annotate")
    return store.bulk_annotate(ids, who, status=status, add_labels=add_labels, remove_labels=remove_labels)


def actor(store: Store, by: str | None, action: str) -> str:
    """The user doing `action`: `by` as the app or the command line named them, else the operating-system user
    (a script calling the library); refused unless their role allows it."""
    name = by or local_user()
    require(store, name, action)
    return name
