"""Team curation: who is acting (identity modes), what each role may do, assignment of review work and
agreement between annotators. The app and the command line call the same functions, so they agree."""

from .identity import AUTH_ENV, AccessDenied, AuthMode, SignInRequired, auth_mode, identify, local_user
from .roles import ACTIONS, ROLES, acting_user, actor, add_user, allowed, bulk_review, check_review, remove_user, require, role_of

__all__ = ["AUTH_ENV", "AccessDenied", "AuthMode", "SignInRequired", "auth_mode", "identify", "local_user", "ACTIONS",
           "ROLES", "acting_user", "actor", "add_user", "allowed", "bulk_review", "check_review", "remove_user", "require",
           "role_of"]
