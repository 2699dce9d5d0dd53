"""API views of accounts: who am I, my API tokens, and (for admins) users and the audit log.

Tokens are made and revoked here by the person they belong to (an admin may revoke anyone's);
a new token is in the response once and never again. On 127.0.0.1, where nobody logs in, there
are no tokens to manage and these answer 409.
"""

from __future__ import annotations

from flask import g, jsonify
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, ConfigDict, Field

from biosegment.errors import NotFoundError
from biosegment.webui.api import API_PREFIX
from biosegment.webui.auth import auth_settings, current_user, request_accounts
from biosegment.webui.errors import ApiError

__all__ = ["api", "NewToken", "TokenPath", "AuditQuery"]

api = APIBlueprint(
    "auth_api",
    __name__,
    url_prefix=API_PREFIX,
    abp_tags=[
        Tag(name="accounts", description="Login identity, API tokens, users and the audit log")
    ],
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewToken(_Strict):
    label: str = Field(
        "script",
        min_length=1,
        max_length=100,
        description="what the token is for, shown in token lists",
    )


class TokenPath(_Strict):
    token_id: str = Field(max_length=64, description="the token's public id")


class AuditQuery(_Strict):
    action: str | None = Field(
        None, max_length=64, description="e.g. job.segment, job.cancel, or job.* for all"
    )
    target: str | None = Field(None, max_length=200, description="e.g. a job id")
    limit: int = Field(100, ge=1, le=1000)


def _require_accounts() -> None:
    if not auth_settings().required:
        raise ApiError(409, "this BioSegment listens on 127.0.0.1 and uses no accounts", field=None)


def _me() -> dict:
    user = current_user() or {}
    return {"name": user.get("name"), "role": user.get("role")}


@api.get("/auth/me", responses={200: None})
def get_me():
    """Who this request acts as, and whether this server uses accounts."""

    return jsonify(
        {**_me(), "accounts": auth_settings().required, "via": g.get("biosegment_auth_via")}
    )


@api.get("/auth/tokens", responses={200: None, 409: None})
def list_tokens():
    """My API tokens (without their secrets)."""
    _require_accounts()
    return jsonify(request_accounts().tokens(_me()["name"]))


@api.post("/auth/tokens", responses={201: None, 400: None, 409: None})
def create_token(body: NewToken):
    """Make an API token for scripts; the token is in this response only."""
    _require_accounts()
    accounts = request_accounts()
    token, row = accounts.create_token(_me()["name"], body.label)
    accounts.record(_me()["name"], "token.create", target=row["id"], detail={"label": row["label"]})
    return jsonify({**row, "token": token}), 201


@api.delete("/auth/tokens/<token_id>", responses={200: None, 404: None, 409: None})
def revoke_token(path: TokenPath):
    """Revoke one of my API tokens (an admin may revoke anyone's); it stops working at once."""
    _require_accounts()
    accounts = request_accounts()
    me = _me()
    try:
        row = accounts.token(path.token_id)
    except NotFoundError as exc:
        raise ApiError(404, str(exc), field="token_id") from None
    if row["user"] != me["name"] and me["role"] != "admin":
        raise ApiError(404, f"no API token {path.token_id!r}", field="token_id")
    row = accounts.revoke_token(path.token_id)
    accounts.record(me["name"], "token.revoke", target=path.token_id, detail={"owner": row["user"]})
    return jsonify(row)


@api.get("/users", responses={200: None, 403: None, 409: None})
def list_users():
    """Everyone who has an account, with their role (admins only)."""
    _require_accounts()
    return jsonify(request_accounts().users())


@api.get("/audit", responses={200: None, 403: None})
def list_audit(query: AuditQuery):
    """Who launched, cancelled and retried which job, logins and account changes; newest
    first (admins only)."""
    return jsonify(
        request_accounts().audit_log(limit=query.limit, action=query.action, target=query.target)
    )
