"""CLI commands for accounts: ``users add|remove|passwd|role|list|token|tokens|revoke-token``
and ``audit``.

Accounts matter when BioSegment listens beyond 127.0.0.1 (``[server] host`` in the config);
there every request needs a login or an API token. Passwords are generated and shown once
unless one is piped in with ``--password-stdin``; tokens are shown once when made. Every change
is written to the audit log with the system account that ran the command.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from biosegment.cli.context import AppContext, emit_json, pass_app
from biosegment.cli.root import main
from biosegment.cli.tables import print_table

__all__ = ["users", "audit", "setup_first_admin", "echo_first_admin"]

JSON_HELP = "Print machine-readable JSON instead of a table."
ROLE_CHOICE = click.Choice(["admin", "annotator", "viewer"])


def _actor() -> str:
    from biosegment.system_service.spec import current_user

    return f"cli:{current_user()}"


def _accounts(app: AppContext):
    from biosegment.accounts import open_accounts

    return open_accounts(app.require_root())


def _read_password(from_stdin: bool) -> tuple[str, bool]:
    """``(password, generated)``: one line from stdin, or a new random one."""
    from biosegment.accounts import generate_password

    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n"), False
    return generate_password(), True


def _ensure_session_key(app: AppContext) -> Path:
    from biosegment.secret_store import ensure_secrets

    return ensure_secrets(app.config).path


@main.group()
def users() -> None:
    """Manage the people who may use BioSegment when it listens beyond 127.0.0.1.

    Roles: admin (everything), annotator (annotate and launch jobs), viewer (read only).
    """


@users.command("add")
@click.argument("name")
@click.option(
    "--role",
    type=ROLE_CHOICE,
    default="annotator",
    show_default=True,
    help="What the person may do.",
)
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input instead of generating one.",
)
@pass_app
def add_user(app: AppContext, name: str, role: str, password_stdin: bool) -> None:
    """Create an account; a generated password is shown once."""
    password, generated = _read_password(password_stdin)
    secrets_file = _ensure_session_key(app)
    with _accounts(app) as accounts:
        accounts.add_user(name, role, password)
        accounts.record(_actor(), "user.add", target=name, detail={"role": role})
    click.echo(f"Created {role} {name!r}.")
    if generated:
        click.echo(f"Password (shown only now): {password}")
    click.echo(f"Session key: {secrets_file}")


@users.command("remove")
@click.argument("name")
@pass_app
def remove_user(app: AppContext, name: str) -> None:
    """Remove an account, its API tokens and its sessions (the last admin stays)."""
    with _accounts(app) as accounts:
        accounts.remove_user(name)
        accounts.record(_actor(), "user.remove", target=name)
    click.echo(f"Removed {name!r}; their sessions and API tokens no longer work.")


@users.command("passwd")
@click.argument("name")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the new password from standard input instead of generating one.",
)
@pass_app
def change_password(app: AppContext, name: str, password_stdin: bool) -> None:
    """Set a new password (signs the person out everywhere and lifts a lockout)."""
    password, generated = _read_password(password_stdin)
    with _accounts(app) as accounts:
        accounts.set_password(name, password)
        accounts.record(_actor(), "user.passwd", target=name)
    click.echo(f"Changed the password of {name!r}.")
    if generated:
        click.echo(f"Password (shown only now): {password}")


@users.command("role")
@click.argument("name")
@click.argument("role", type=ROLE_CHOICE)
@pass_app
def change_role(app: AppContext, name: str, role: str) -> None:
    """Give an account another role (the last admin stays admin)."""
    with _accounts(app) as accounts:
        accounts.set_role(name, role)
        accounts.record(_actor(), "user.role", target=name, detail={"role": role})
    click.echo(f"{name!r} is now {role}.")


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_app
def list_users(app: AppContext, as_json: bool) -> None:
    """List the accounts and their roles."""
    with _accounts(app) as accounts:
        rows = accounts.users()
    if as_json:
        emit_json(rows)
        return
    print_table(
        ["NAME", "ROLE", "CREATED", "LOCKED UNTIL"],
        [[r["name"], r["role"], r["created_at"][:19], r["locked_until"] or ""] for r in rows],
        empty="No accounts. Create one with: biosegment users add NAME",
    )


@users.command("token")
@click.argument("name")
@click.option(
    "--label",
    default="script",
    show_default=True,
    help="What the token is for, shown in token lists.",
)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_app
def create_token(app: AppContext, name: str, label: str, as_json: bool) -> None:
    """Make an API token for NAME's scripts; it is shown only now."""
    with _accounts(app) as accounts:
        token, row = accounts.create_token(name, label)
        accounts.record(
            _actor(),
            "token.create",
            target=row["id"],
            detail={"owner": name, "label": row["label"]},
        )
    if as_json:
        emit_json({**row, "token": token})
        return
    click.echo(f"API token {row['id']} for {name!r} (shown only now):")
    click.echo(token)
    click.echo("Send it as the header: Authorization: Bearer <token>")


@users.command("tokens")
@click.argument("name", required=False)
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked tokens.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_app
def list_tokens(app: AppContext, name: str | None, include_revoked: bool, as_json: bool) -> None:
    """List API tokens (of NAME, or everyone's), without their secrets."""
    with _accounts(app) as accounts:
        rows = accounts.tokens(name, include_revoked=include_revoked)
    if as_json:
        emit_json(rows)
        return
    print_table(
        ["ID", "USER", "LABEL", "CREATED", "LAST USED", "REVOKED"],
        [
            [
                r["id"],
                r["user"],
                r["label"],
                r["created_at"][:19],
                (r["last_used_at"] or "")[:19],
                (r["revoked_at"] or "")[:19],
            ]
            for r in rows
        ],
        empty="No API tokens.",
    )


@users.command("revoke-token")
@click.argument("token_id")
@pass_app
def revoke_token(app: AppContext, token_id: str) -> None:
    """Revoke an API token by its id; it stops working at once."""
    with _accounts(app) as accounts:
        row = accounts.revoke_token(token_id)
        accounts.record(_actor(), "token.revoke", target=token_id, detail={"owner": row["user"]})
    click.echo(f"Revoked API token {token_id} of {row['user']!r}.")


@main.command()
@click.option(
    "--action",
    default=None,
    help="Only this action (job.segment, job.cancel, login, ...); job.* for all jobs.",
)
@click.option(
    "--limit",
    type=click.IntRange(1, 100000),
    default=50,
    show_default=True,
    help="How many entries, newest first.",
)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_app
def audit(app: AppContext, action: str | None, limit: int, as_json: bool) -> None:
    """Show who launched and cancelled which job, logins and account changes."""
    with _accounts(app) as accounts:
        rows = accounts.audit_log(limit=limit, action=action)
    if as_json:
        emit_json(rows)
        return
    print_table(
        ["WHEN", "WHO", "ACTION", "TARGET", "DETAIL", "FROM"],
        [
            [
                r["at"][:19],
                r["actor"],
                r["action"],
                r["target"] or "",
                ", ".join(f"{k}={v}" for k, v in (r["detail"] or {}).items()),
                r["remote"] or "",
            ]
            for r in rows
        ],
        empty="The audit log is empty.",
    )


def setup_first_admin(
    app: AppContext, root: Path, *, requested: bool, config_file: Path | None
) -> dict | None:
    """For ``init``: create the first admin when asked, or when the config listens beyond
    127.0.0.1; returns ``{name, password, secrets}`` or None when nothing was created."""
    from dataclasses import replace

    from biosegment.accounts import DEFAULT_ADMIN_NAME, create_first_admin, is_loopback
    from biosegment.config import load_config
    from biosegment.secret_store import ensure_secrets

    config = load_config(config_file) if config_file is not None else app.config
    if not requested and is_loopback(config.server.host):
        return None
    config = replace(config, data_dir=Path(root).resolve())
    secrets_file = ensure_secrets(config).path
    password = create_first_admin(root)
    if password is None:
        return None
    return {"name": DEFAULT_ADMIN_NAME, "password": password, "secrets": str(secrets_file)}


def echo_first_admin(admin: dict | None) -> None:
    if admin is None:
        return
    click.echo(
        f"Administrator {admin['name']!r} created. Password (shown only now): {admin['password']}"
    )
    click.echo(f"Session key: {admin['secrets']} (keep it out of version control)")
