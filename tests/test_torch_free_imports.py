"""The web UI and the CLI start without torch: importing them never imports it.

torch takes seconds to import and hundreds of megabytes; only the code that computes (a job
runner, a live preview, a model export) needs it. Each check runs in a fresh interpreter, so
nothing another test imported hides an import.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

_PROBE = """
import importlib, sys
importlib.import_module({module!r})
{extra}
heavy = sorted(name for name in ("torch", "torchvision") if name in sys.modules)
print(",".join(heavy))
"""


def _heavy_modules_after(module: str, extra: str = "") -> str:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module, extra=extra)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize(
    "module",
    [
        "biosegment.webui",
        "biosegment.webui.app",
        "biosegment.webui.pages",
        "biosegment.webui.api.live_routes",
        "biosegment.cli",
        "biosegment.tasks.service",
        "biosegment.engine",
        "biosegment.engine.train_settings",
    ],
)
def test_importing_does_not_import_torch(module):
    assert _heavy_modules_after(module) == ""


def test_building_the_web_app_does_not_import_torch(tmp_path):
    """``create_app`` registers every page and route without loading the engine's torch."""
    root = tmp_path / "data"
    extra = (
        "from pathlib import Path\n"
        "from biosegment.config import load_config\n"
        "from biosegment.datafolder import init_data_folder\n"
        "from biosegment.webui import create_app\n"
        f"root = Path({str(root)!r}); init_data_folder(root)\n"
        "app = create_app(load_config(data_dir=root, env={}, cwd=root))\n"
        "assert app.test_client().get('/api/v1/openapi.json').status_code == 200\n"
    )
    assert _heavy_modules_after("biosegment.datafolder", extra) == ""


def test_the_probe_sees_torch_where_it_is_imported():
    """The check can fail: the engine's checkpoint module does import torch."""
    assert _heavy_modules_after("biosegment.engine.checkpoint") == "torch"
