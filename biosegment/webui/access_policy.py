"""Which permission each request needs, decided from its endpoint and method alone.

Reading (GET, HEAD, OPTIONS) needs ``read``; writing to the annotation API needs ``annotate``;
writing to the jobs API (launch, cancel, retry) needs ``run_jobs``, and so does renaming,
deleting (to the trash) and restoring segmentations and models, the things jobs make (renaming and
deleting an annotation is part of the annotation API: ``annotate``); a person's own API tokens and
logging out need only ``read``. Everything else that changes state, and every endpoint listed in
:data:`ADMIN_ENDPOINTS`, needs ``manage``: a new endpoint nobody mapped is admin-only until it
is, so forgetting a rule never opens a door. :data:`PUBLIC_ENDPOINTS` need no login at all:
the login form and static assets that hold no data.
"""

from __future__ import annotations

from biosegment.accounts.roles import Permission

__all__ = ["PUBLIC_ENDPOINTS", "ADMIN_ENDPOINTS", "SAFE_METHODS", "required_permission"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

PUBLIC_ENDPOINTS = frozenset(
    {
        "static",  # the UI's own scripts and styles
        "swagger.static",  # Swagger UI's assets (the docs page itself needs a login)
        "openapi.static",
        "accounts.login",
    }
)

#: Reading these needs ``manage`` too: they show other people's accounts and actions.
ADMIN_ENDPOINTS = frozenset(
    {
        "auth_api.list_users",
        "auth_api.list_audit",
    }
)

#: Writes by blueprint: the part of the API a role may change.
_WRITE_PERMISSION_BY_BLUEPRINT = {
    "annotations_api": Permission.ANNOTATE,
    "jobs_api": Permission.RUN_JOBS,
    "items_api": Permission.RUN_JOBS,
}

#: Writes any logged-in person may make: their own session and their own API tokens.
_SELF_SERVICE_ENDPOINTS = frozenset(
    {
        "accounts.logout",
        "auth_api.create_token",
        "auth_api.revoke_token",
    }
)


def required_permission(method: str, endpoint: str | None) -> Permission:
    """The permission a ``method`` request to ``endpoint`` needs (unknown endpoints: read)."""
    if endpoint in ADMIN_ENDPOINTS:
        return Permission.MANAGE
    if method.upper() in SAFE_METHODS:
        return Permission.READ
    if endpoint in _SELF_SERVICE_ENDPOINTS:
        return Permission.READ
    blueprint = (endpoint or "").rpartition(".")[0]
    return _WRITE_PERMISSION_BY_BLUEPRINT.get(blueprint, Permission.MANAGE)
