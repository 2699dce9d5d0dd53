"""Load ``biosegment.toml`` into one frozen :class:`Config` value.

This is the only module that reads environment variables. Lookup order for the file:
``--config`` (the ``explicit`` argument), ``BIOSEGMENT_CONFIG``, ``./biosegment.toml``, then the
user's config directory. ``BIOSEGMENT_DATA`` and the old stack's ``ROOT_DATA_FOLDER`` override
``data_dir``. Relative paths in a file are relative to the folder that holds the file. Unknown
keys and wrong types are errors that name the file and the key, so a typo never silently falls
back to a default.
"""

from __future__ import annotations

import ipaddress
import os
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from biosegment.errors import InputError
from biosegment.folder_names import LOG_FILE, STATE_DIR

__all__ = [
    "Config",
    "ServerConfig",
    "QueueConfig",
    "EngineConfig",
    "WatchConfig",
    "AutomationConfig",
    "LogConfig",
    "LimitsConfig",
    "load_config",
    "find_config_file",
    "user_config_dir",
    "default_data_dir",
    "config_from_mapping",
    "render_config",
    "display_available",
    "secrets_from_environment",
    "CONFIG_FILE_NAME",
    "SECRET_ENVIRONMENT",
]

CONFIG_FILE_NAME = "biosegment.toml"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8765
    max_request_mb: int = 64


@dataclass(frozen=True, slots=True)
class QueueConfig:
    url: str = ""  # empty: SqliteHuey in <data>/.biosegment/queue.db; redis://... for RedisHuey
    workers: int = 1  # consumer worker threads inside `run` and `worker`
    name: str = "biosegment"  # queue name; data folders sharing one Redis database need their own


@dataclass(frozen=True, slots=True)
class EngineConfig:
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    threads: int = 0  # torch intra-op threads; 0 lets torch decide
    segmentation_format: str = "tiff"  # tiff (labels.tif) | ome-zarr (labels.ome.zarr, a pyramid)
    ome_zarr_version: str = "0.5"  # OME-Zarr outputs: 0.5 (Zarr v3) | 0.4 (Zarr v2, older readers)


@dataclass(frozen=True, slots=True)
class WatchConfig:
    poll: bool = False  # poll instead of inotify/FSEvents (network drives)
    settle_seconds: float = (
        1.0  # a file must keep its size and mtime this long to count as complete
    )
    rescan_minutes: float = 5.0  # periodic full rescan that catches what events miss
    # a dataset the scan registered and whose files left the image folder is forgotten once it
    # is still gone this long after it went (a copy being moved back is not lost on the way)
    forget_after_seconds: float = 60.0


@dataclass(frozen=True, slots=True)
class AutomationConfig:
    auto_segment: bool = False  # segment every new dataset with its project's default model
    keep_job_logs_days: int = 30  # housekeeping removes older job logs


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: str = "INFO"
    file: str = ""  # empty: <data>/.biosegment/biosegment.log


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    max_voxels: int = 10**12  # a dataset whose header claims more voxels is refused
    max_slice_pixels: int = 10**10  # ... or larger slices (y * x)
    max_chunks: int = 10**8  # ... or more storage chunks (Zarr, N5, HDF5)
    max_decode_mb: int = 256  # ... or compressed TIFF strips/tiles unpacking to more MiB each
    read_seconds: float = 10.0  # a read for a web request answers 503 after this long
    heavy_reads: int = 4  # reads of image data the web server runs at the same time
    download_mb: int = 1024  # memory one download (a conversion, a model export) may use
    object_rows: int = 1_000_000  # rows of one object table (objects.csv) the web server keeps


_SECTIONS: dict[str, type] = {
    "server": ServerConfig,
    "queue": QueueConfig,
    "engine": EngineConfig,
    "watch": WatchConfig,
    "automation": AutomationConfig,
    "log": LogConfig,
    "limits": LimitsConfig,
}
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True, slots=True)
class Config:
    """Everything BioSegment is configured with. Build it with :func:`load_config`."""

    data_dir: Path
    server: ServerConfig = field(default_factory=ServerConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    watch: WatchConfig = field(default_factory=WatchConfig)
    automation: AutomationConfig = field(default_factory=AutomationConfig)
    log: LogConfig = field(default_factory=LogConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    source: Path | None = None  #: the file this came from, None for built-in defaults

    @property
    def state_dir(self) -> Path:
        """``<data>/.biosegment``: catalog, queue, logs, caches and the pid file."""
        return self.data_dir / STATE_DIR

    @property
    def log_file(self) -> Path:
        if self.log.file:
            path = Path(self.log.file)
            return path if path.is_absolute() else self.data_dir / path
        return self.state_dir / LOG_FILE

    def with_data_dir(self, data_dir: Path) -> Config:
        return replace(self, data_dir=Path(data_dir).expanduser().resolve())

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "data_dir": str(self.data_dir),
            "source": None if self.source is None else str(self.source),
        }
        for name in _SECTIONS:
            section = getattr(self, name)
            out[name] = {f.name: getattr(section, f.name) for f in fields(section)}
        return out


def user_config_dir(env: Mapping[str, str] | None = None) -> Path:
    """The per-user config folder: XDG on Linux, Application Support on macOS, APPDATA on Windows."""
    env = os.environ if env is None else env
    if sys.platform == "win32":
        base = env.get("APPDATA") or str(Path.home() / "AppData" / "Roaming")
        return Path(base) / "BioSegment"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "BioSegment"
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "biosegment"


def default_data_dir() -> Path:
    """Where the data folder lives when no config names one."""
    return Path.home() / "BioSegment"


def find_config_file(
    explicit: str | os.PathLike | None = None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Path | None:
    """Return the config file to use, following the documented lookup order, or None."""
    env = os.environ if env is None else env
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise InputError("config file not found", source=path)
        return path.resolve()
    if env.get("BIOSEGMENT_CONFIG"):
        path = Path(env["BIOSEGMENT_CONFIG"]).expanduser()
        if not path.is_file():
            raise InputError("config file named by BIOSEGMENT_CONFIG not found", source=path)
        return path.resolve()
    local = (cwd or Path.cwd()) / CONFIG_FILE_NAME
    if local.is_file():
        return local.resolve()
    user = user_config_dir(env) / CONFIG_FILE_NAME
    if user.is_file():
        return user.resolve()
    return None


def _coerce(value: Any, expected: Any, *, source: Path | None, key: str) -> Any:
    """Check one value against the dataclass field's default type (ints widen to floats)."""
    kind = type(expected)
    if kind is bool:
        if not isinstance(value, bool):
            raise InputError(f"expected true or false, got {value!r}", source=source, where=key)
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InputError(f"expected a {kind.__name__}, got {value!r}", source=source, where=key)
    return value


def _section(cls: type, raw: Any, *, source: Path | None, name: str):
    if not isinstance(raw, dict):
        raise InputError(f"[{name}] must be a table", source=source, where=name)
    defaults = cls()
    known = {f.name for f in fields(cls)}
    values = {}
    for key, value in raw.items():
        if key not in known:
            raise InputError(
                f"unknown key; expected one of {', '.join(sorted(known))}",
                source=source,
                where=f"{name}.{key}",
            )
        values[key] = _coerce(value, getattr(defaults, key), source=source, key=f"{name}.{key}")
    return cls(**values)


def config_from_mapping(
    raw: Mapping[str, Any], *, source: Path | None = None, base_dir: Path | None = None
) -> Config:
    """Validate a parsed TOML document and build a :class:`Config` (no env overrides here)."""
    known = {"data_dir", *(_SECTIONS)}
    for key in raw:
        if key not in known:
            raise InputError(
                f"unknown key; expected one of {', '.join(sorted(known))}", source=source, where=key
            )
    data_dir_raw = raw.get("data_dir", "")
    if not isinstance(data_dir_raw, str):
        raise InputError(
            f"expected a path string, got {data_dir_raw!r}", source=source, where="data_dir"
        )
    if data_dir_raw:
        data_dir = Path(data_dir_raw).expanduser()
        if not data_dir.is_absolute():
            data_dir = (base_dir or Path.cwd()) / data_dir
    else:
        data_dir = default_data_dir()
    sections = {
        name: _section(cls, raw.get(name, {}), source=source, name=name)
        for name, cls in _SECTIONS.items()
    }
    config = Config(data_dir=data_dir.resolve(), source=source, **sections)
    _validate(config)
    return config


def _validate(config: Config) -> None:
    src = config.source
    _validate_host(config.server.host, src)
    if not 0 < config.server.port < 65536:
        raise InputError(
            f"port {config.server.port} is outside 1..65535", source=src, where="server.port"
        )
    if config.server.max_request_mb <= 0:
        raise InputError("must be positive", source=src, where="server.max_request_mb")
    if config.queue.url and not config.queue.url.startswith(("redis://", "rediss://", "unix://")):
        raise InputError(
            "expected an empty string (SQLite queue) or a redis:// URL",
            source=src,
            where="queue.url",
        )
    if not config.queue.name or not all(c.isalnum() or c in "-_." for c in config.queue.name):
        raise InputError(
            "expected a non-empty name of letters, digits, '-', '_' or '.'",
            source=src,
            where="queue.name",
        )
    if config.queue.workers < 1:
        raise InputError("must be at least 1", source=src, where="queue.workers")
    if config.log.level.upper() not in _LOG_LEVELS:
        raise InputError(f"expected one of {', '.join(_LOG_LEVELS)}", source=src, where="log.level")
    if config.engine.segmentation_format not in ("tiff", "ome-zarr"):
        raise InputError(
            "expected tiff or ome-zarr", source=src, where="engine.segmentation_format"
        )
    if config.engine.ome_zarr_version not in ("0.4", "0.5"):
        raise InputError("expected 0.4 or 0.5", source=src, where="engine.ome_zarr_version")
    device = config.engine.device
    if not (device in ("auto", "cpu", "cuda", "mps") or device.startswith("cuda:")):
        raise InputError(
            "expected auto, cpu, cuda, cuda:N or mps", source=src, where="engine.device"
        )
    if config.watch.forget_after_seconds < 0:
        raise InputError("must be >= 0", source=src, where="watch.forget_after_seconds")
    if config.watch.settle_seconds < 0 or config.watch.rescan_minutes <= 0:
        raise InputError(
            "settle_seconds must be >= 0 and rescan_minutes > 0", source=src, where="watch"
        )
    for name in (
        "max_voxels",
        "max_slice_pixels",
        "max_chunks",
        "max_decode_mb",
        "heavy_reads",
        "download_mb",
        "object_rows",
    ):
        if getattr(config.limits, name) < 1:
            raise InputError("must be at least 1", source=src, where=f"limits.{name}")
    if not config.limits.read_seconds > 0:
        raise InputError("must be positive", source=src, where="limits.read_seconds")


def _validate_host(host: str, source: Path | None) -> None:
    """An address to listen on: an IP address or a host name, nothing around it."""

    where = "server.host"
    if host != host.strip():
        raise InputError(
            f'{host!r} has spaces around it; write the address alone, such as "127.0.0.1"',
            source=source,
            where=where,
        )
    if not host:
        return  # every interface, like 0.0.0.0 (accounts are then required)
    try:
        ipaddress.ip_address(host[1:-1] if host.startswith("[") and host.endswith("]") else host)
        return
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    if not all(
        label
        and len(label) <= 63
        and label[0] != "-"
        and label[-1] != "-"
        and all(c.isascii() and (c.isalnum() or c == "-") for c in label)
        for label in labels
    ):
        raise InputError(
            f"{host!r} is neither an IP address nor a host name", source=source, where=where
        )


def load_config(
    explicit: str | os.PathLike | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Config:
    """Find, parse and validate the config, then apply overrides.

    ``data_dir`` (the CLI's ``--data``) wins over ``BIOSEGMENT_DATA``, which wins over
    ``ROOT_DATA_FOLDER``, which wins over the file's ``data_dir``.
    """
    env = os.environ if env is None else env
    path = find_config_file(explicit, env=env, cwd=cwd)
    if path is None:
        config = config_from_mapping({}, source=None)
    else:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"invalid TOML: {exc}", source=path) from None
        except UnicodeDecodeError:
            raise InputError("not UTF-8 text", source=path) from None
        config = config_from_mapping(raw, source=path, base_dir=path.parent)
    override = data_dir or env.get("BIOSEGMENT_DATA") or env.get("ROOT_DATA_FOLDER")
    if override:
        config = config.with_data_dir(Path(override))
    return config


def display_available(env: Mapping[str, str] | None = None) -> bool:
    """Whether a desktop window can be shown: always on Windows and macOS; on other systems
    when an X11 or Wayland display is set, or Qt is told to render offscreen (tests)."""
    env = os.environ if env is None else env
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(
        env.get("DISPLAY")
        or env.get("WAYLAND_DISPLAY")
        or env.get("QT_QPA_PLATFORM") == "offscreen"
    )


#: Secrets that may come from the environment instead of ``secrets.toml`` (which they override).
SECRET_ENVIRONMENT = {"session_key": "BIOSEGMENT_SESSION_KEY"}


def secrets_from_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The secrets set in the environment, by their ``secrets.toml`` key (see secret_store)."""
    env = os.environ if env is None else env
    return {key: env[name] for key, name in SECRET_ENVIRONMENT.items() if env.get(name)}


def render_config(data_dir: str) -> str:
    """A minimal, commented config file for a data folder (written by ``biosegment init``)."""
    return (
        "# BioSegment configuration for this data folder. Every key and its default is\n"
        "# documented in the biosegment.toml at the top of the BioSegment source tree.\n"
        f'data_dir = "{data_dir}"\n\n'
        "[server]\n"
        'host = "127.0.0.1"\n'
        "port = 8765\n"
    )
