"""Imports sit at the top of a module; only torch and optional or slow extras load late.

An import inside a function hides a module's dependencies from its reader and from the import
checks (import-linter counts them, but a reader skimming the top does not), so BioSegment keeps
them for modules that cost real time or may be missing. Each allowed module below says why.
Every module under ``biosegment/`` is parsed (not imported), so the check is quick and sees
every function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "biosegment"

_TORCH = "imports torch (seconds and hundreds of megabytes): only code that computes loads it"

#: Imported module (or a package whose submodules are meant) -> why it may load inside a function.
LAZY_ALLOWED: dict[str, str] = {
    "torch": _TORCH,
    # The engine modules that import torch, imported late by the torch-free layers (the job
    # handlers, the web UI's live preview, the catalog's model probe, the CLI's exports).
    "biosegment.engine.checkpoint": _TORCH,
    "biosegment.engine.device": _TORCH,
    "biosegment.engine.inference": _TORCH,
    "biosegment.engine.live_snapshot": _TORCH,
    "biosegment.engine.train_state": _TORCH,
    "biosegment.engine.training": _TORCH,
    "biosegment.engine.validation": _TORCH,
    "biosegment.engine.export": _TORCH,
    "biosegment.engine.bioimageio": _TORCH,
    # Resampling for a model trained at another pixel size: scipy.ndimage takes a third of a
    # second to import, which the web UI pays only when a live preview is predicted.
    "biosegment.engine.pixel_size": "imports scipy.ndimage (a third of a second)",
    # Objects (connected components, watershed, marching cubes): scipy and scikit-image take
    # about a second to import; only a segment job that counts objects loads them.
    "biosegment.tasks.segment_objects": "imports scipy and scikit-image (about a second)",
    # zarr takes about 0.2 s; most data folders hold no Zarr or N5, and OME-Zarr output is a
    # choice. numcodecs is its codec package, used only next to it.
    "zarr": "about 0.2 s to import; loaded when a Zarr/N5 volume is read or written",
    "numcodecs": "zarr's codecs, loaded with zarr",
    # The daemon package's names load on first use (PEP 562), so the CLI's daemon_running()
    # check never loads watchdog, Huey or APScheduler.
    "biosegment.daemon.service": "the daemon package's lazy names (watchdog, Huey, APScheduler)",
    "biosegment.daemon.consumer": "the daemon package's lazy names (watchdog, Huey, APScheduler)",
    "biosegment.daemon.watcher": "the daemon package's lazy names (watchdog, Huey, APScheduler)",
    # Optional extras (pyproject's export extra) and GUI toolkits: they may be missing.
    "onnx": "the export extra: may not be installed",
    "yaml": "the export extra (bioimage.io packages): may not be installed",
    "webview": "pywebview loads a GUI toolkit; only the desktop window needs it",
    # Modules that exist only on POSIX: the package must import on Windows
    # (tests/test_portability.py).
    "pwd": "POSIX only",
    "grp": "POSIX only",
    "fcntl": "POSIX only",
    "msvcrt": "Windows only",
    # TensorBoard's writer (with torch): only a training run writes its logs.
    "torch.utils.tensorboard": "TensorBoard's event writer; only a training run needs it",
}

#: Importing module (a package prefix) -> why its functions may import anything late.
LAZY_IMPORTERS: dict[str, str] = {
    # `biosegment --help` and the quick commands start in a tenth of a second without numpy,
    # Flask, the catalog or the queue; each command's body imports the layers it drives
    # (importing them all at the top takes about 1.5 s).
    "biosegment.cli": "each command imports what it drives, so the CLI starts at once",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _covered(name: str, table: dict[str, str]) -> bool:
    return any(name == key or name.startswith(f"{key}.") for key in table)


def late_imports(source: str) -> list[tuple[int, str]]:
    """``(line, module)`` of every import inside a function or method of ``source``."""
    found = []
    for function in ast.walk(ast.parse(source)):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.Import):
                found += [(node.lineno, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                found.append((node.lineno, "." * node.level + (node.module or "")))
    return sorted(set(found))


def unexplained_late_imports(path: Path) -> list[str]:
    module = _module_name(path)
    if _covered(module, LAZY_IMPORTERS):
        return []
    return [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {name} inside a function"
        for line, name in late_imports(path.read_text(encoding="utf-8"))
        if not _covered(name, LAZY_ALLOWED)
    ]


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE.parent))
)
def test_imports_inside_functions_are_only_the_allowed_ones(path):
    problems = unexplained_late_imports(path)
    assert not problems, (
        "import these at the top of the module, or add the module to LAZY_ALLOWED with "
        "the reason it must load late:\n" + "\n".join(problems)
    )


def test_the_check_sees_a_late_import_of_a_cheap_module(tmp_path):
    """The check can fail: a function that imports part of BioSegment is reported."""
    path = PACKAGE / "catalog" / "example.py"  # named as if it lived in the package
    source = "def f():\n    from biosegment.catalog import open_catalog\n    return open_catalog\n"
    assert late_imports(source) == [(2, "biosegment.catalog")]
    assert not _covered("biosegment.catalog", LAZY_ALLOWED)
    assert not _covered(_module_name(path), LAZY_IMPORTERS)


def test_every_allowed_module_says_why():
    for table in (LAZY_ALLOWED, LAZY_IMPORTERS):
        assert all(reason.strip() for reason in table.values())
