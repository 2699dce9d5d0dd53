"""Secrets of one installation, kept apart from ``biosegment.toml``: ``secrets.toml``.

The file lives beside the config file (``<config folder>/secrets.toml``), or at the top of the
data folder (where ``biosegment init`` writes the config) when there is no config file. It is
created on first need with a freshly generated session key, readable and writable by its owner
only (0600), and it is refused, naming the file, when group or others can read it. Environment
variables (``BIOSEGMENT_SESSION_KEY``, read by :mod:`biosegment.config`) override the file, for
setups that inject secrets at start. Nothing here is ever written into ``biosegment.toml``.
"""

from __future__ import annotations

import os
import secrets
import stat
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from biosegment.config import Config, secrets_from_environment
from biosegment.errors import InputError

__all__ = ["Secrets", "SECRETS_FILE_NAME", "secrets_path", "load_secrets", "ensure_secrets"]

SECRETS_FILE_NAME = "secrets.toml"
_KEYS = ("session_key",)
_MIN_KEY_CHARS = 32


@dataclass(frozen=True, slots=True)
class Secrets:
    session_key: str | None  #: signs the web UI's session cookies
    path: Path  #: the secrets file (it may not exist)


def secrets_path(config: Config) -> Path:
    """Where ``secrets.toml`` belongs for ``config``."""
    if config.source is not None:
        return Path(config.source).parent / SECRETS_FILE_NAME
    # No config file: the data folder's top, where `biosegment init` puts biosegment.toml.
    return Path(config.data_dir) / SECRETS_FILE_NAME


def _check_permissions(path: Path) -> None:
    if sys.platform == "win32":  # pragma: no cover - NTFS ACLs, not mode bits
        return
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InputError(
            f"readable by others (mode {stat.S_IMODE(mode):04o}); restrict it with "
            f"chmod 600 {path}",
            source=path,
        )


def _read_file(path: Path) -> dict[str, str]:
    try:
        _check_permissions(path)
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"invalid TOML: {exc}", source=path) from None
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", source=path) from None
    for key, value in raw.items():
        if key not in _KEYS:
            raise InputError(
                f"unknown key; expected one of {', '.join(_KEYS)}", source=path, where=key
            )
        if not isinstance(value, str) or len(value) < _MIN_KEY_CHARS:
            raise InputError(
                f"expected a string of at least {_MIN_KEY_CHARS} characters", source=path, where=key
            )
    return raw


def load_secrets(config: Config, *, env: dict[str, str] | None = None) -> Secrets:
    """Read the secrets: the environment first, then ``secrets.toml``; missing ones are None."""
    path = secrets_path(config)
    values = {**_read_file(path), **secrets_from_environment(env)}
    return Secrets(session_key=values.get("session_key"), path=path)


def _write_new_file(path: Path, values: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = (
        "# BioSegment secrets. Keep this file out of version control and readable only by\n"
        "# the account that runs BioSegment. Deleting it signs everyone out.\n"
        + "".join(f'{key} = "{value}"\n' for key, value in values.items())
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # O_EXCL with mode 0600: the file never exists, even for a moment, with wider permissions.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(body)
        if path.exists():
            raise FileExistsError(path)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def ensure_secrets(config: Config, *, env: dict[str, str] | None = None) -> Secrets:
    """Load the secrets, creating ``secrets.toml`` with a new session key when none exists."""
    current = load_secrets(config, env=env)
    if current.session_key:
        return current
    on_disk = _read_file(current.path)
    values = {**on_disk, "session_key": secrets.token_hex(32)}
    if on_disk:
        raise InputError(
            "has no session_key; add one or remove the file to have it created", source=current.path
        )
    try:
        _write_new_file(current.path, values)
    except FileExistsError:
        pass  # another process created it first: use theirs
    return load_secrets(config, env=env)
