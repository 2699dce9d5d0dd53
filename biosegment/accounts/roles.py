"""Roles and what each may do: admin (everything), annotator (annotate, launch jobs), viewer (read).

Permissions are the verbs the web layer checks per endpoint; roles are fixed sets of them, so
"may this person do that?" is one lookup and a new endpoint only has to name its permission.
"""

from __future__ import annotations

from enum import Enum

from biosegment.errors import InputError

__all__ = ["Role", "Permission", "ROLE_PERMISSIONS", "role_allows", "parse_role"]


class Permission(str, Enum):
    READ = "read"  #: see datasets, models, jobs, tiles; manage one's own API tokens
    ANNOTATE = "annotate"  #: create annotations and paint slices
    RUN_JOBS = "run_jobs"  #: launch, cancel and retry segmentation and training
    MANAGE = "manage"  #: accounts, the audit log, everything else that changes state


class Role(str, Enum):
    ADMIN = "admin"
    ANNOTATOR = "annotator"
    VIEWER = "viewer"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.ANNOTATOR: frozenset({Permission.READ, Permission.ANNOTATE, Permission.RUN_JOBS}),
    Role.VIEWER: frozenset({Permission.READ}),
}


def role_allows(role: Role | str, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[Role(role)]


def parse_role(value: str, *, where: str = "role") -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InputError(
            f"unknown role {value!r}; expected one of {', '.join(r.value for r in Role)}",
            where=where,
        ) from None
