"""Shared state of one CLI invocation: the loaded config and an open catalog, both lazy.

Commands receive an :class:`AppContext` through ``@pass_app``; the config is read only when a
command needs it, so ``--help`` never touches the disk. Bad input becomes a one-line
``click.ClickException`` naming the file or key.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from biosegment.errors import BioSegmentError

__all__ = ["AppContext", "pass_app", "friendly_errors", "emit_json"]


class AppContext:
    def __init__(self, *, config_path: str | None, data_dir: str | None):
        self.config_path = config_path
        self.data_dir_override = data_dir
        self._config = None
        self._catalog = None

    @property
    def config(self):
        if self._config is None:
            from biosegment.config import load_config

            self._config = load_config(self.config_path, data_dir=self.data_dir_override)
            from biosegment.volumes.limits import limits_from, set_volume_limits

            set_volume_limits(limits_from(self._config.limits))
        return self._config

    @property
    def root(self) -> Path:
        return self.config.data_dir

    def require_root(self) -> Path:
        root = self.root
        if not root.is_dir():
            raise click.ClickException(
                f"data folder {root} does not exist; create it with: biosegment init {root}"
            )
        return root

    def catalog(self):
        """The data folder's catalog, opened (and migrated) on first use."""
        if self._catalog is None:
            from biosegment.catalog import open_catalog

            self._catalog = open_catalog(self.require_root())
        return self._catalog

    def close(self) -> None:
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None


def friendly_errors(func: Callable) -> Callable:
    """Turn BioSegment's own errors into one-line CLI errors (exit status 1)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except BioSegmentError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def pass_app(func: Callable) -> Callable:
    """Pass the :class:`AppContext` as first argument, close it afterwards, and handle errors."""

    @click.pass_obj
    @functools.wraps(func)
    def wrapper(app: AppContext, *args, **kwargs):
        try:
            return friendly_errors(func)(app, *args, **kwargs)
        finally:
            app.close()

    return wrapper


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str, ensure_ascii=False))
