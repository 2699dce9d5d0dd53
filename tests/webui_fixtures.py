"""Helpers for the web UI tests: a demo data folder, the real app served by waitress, HTTP calls.

Every web test talks to the real application over real HTTP on 127.0.0.1 (a free port), with a
data folder made by ``biosegment init --demo``'s own function, so what is tested is what runs.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from biosegment.catalog import open_catalog, refresh
from biosegment.config import ServerConfig, load_config
from biosegment.datafolder import DEMO_DATASET, init_data_folder
from biosegment.webui.server import create_server

__all__ = [
    "make_demo_folder",
    "config_for",
    "serve",
    "Http",
    "Reply",
    "png_pixels",
    "make_tiny_model",
    "CHROMIUM",
    "chromium_or_skip",
    "chromium_page",
    "SCREENSHOTS",
    "DEMO_DATASET",
]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def make_demo_folder(root: Path) -> Path:
    """A data folder with the demo dataset, its catalog refreshed as the daemon would."""
    init_data_folder(root, demo=True)
    with open_catalog(root) as catalog:
        refresh(catalog, root)
    return root


def config_for(root: Path, *, max_request_mb: int = 64):
    config = load_config(data_dir=root, env={}, cwd=root)
    # port 0: the OS picks a free port (the validated config refuses 0, tests need it)
    return dataclasses.replace(
        config, server=ServerConfig(host="127.0.0.1", port=0, max_request_mb=max_request_mb)
    )


class serve:
    """Context manager: the app for ``config`` served by waitress in a thread."""

    def __init__(self, config, jobs=None):
        self.server = create_server(config, jobs=jobs)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self.server

    def __exit__(self, *exc):
        self.server.close()
        self.thread.join(10)


@dataclass
class Reply:
    status: int
    headers: object  # case-insensitive: an email.message.Message
    body: bytes

    def json(self):
        return json.loads(self.body)


class Http:
    """Real HTTP requests against a base URL; never raises for HTTP error statuses."""

    def __init__(self, base_url: str):
        self.base = base_url.rstrip("/")

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: dict | None = None,
        json_body=None,
    ) -> Reply:
        headers = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.base + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return Reply(response.status, response.headers, response.read())
        except urllib.error.HTTPError as error:
            return Reply(error.code, error.headers, error.read())

    def get(self, path: str, **kw) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw) -> Reply:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw) -> Reply:
        return self.request("PUT", path, **kw)


def png_pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image)


def make_tiny_model(
    root: Path, name: str = "tiny-membrane", *, metrics=None, feature_maps: int = 4, levels: int = 2
) -> Path:
    """A small untrained 2-class U-Net saved as a model folder, and registered by a refresh."""
    import torch

    from biosegment.engine import ModelCard, UNet, save_model

    torch.manual_seed(0)
    model = UNet(num_classes=2, feature_maps=feature_maps, levels=levels, norm="none")
    card = ModelCard(
        name=name,
        architecture=dict(model.config),
        classes=[{"id": 0, "name": "background"}, {"id": 1, "name": "membrane"}],
    )
    if metrics is not None:
        card.metrics = metrics
    folder = root / "models" / name
    save_model(model, card, folder)
    with open_catalog(root) as catalog:
        refresh(catalog, root)
    return folder


def chromium_or_skip():
    import pytest

    if not CHROMIUM.exists() and not shutil.which("chromium"):
        pytest.skip("chromium not installed (/usr/bin/chromium); `make test` installs it")
    try:
        import playwright  # noqa: F401
    except ImportError:
        pytest.skip("playwright (Python package) not installed; `make test` installs it")
    return str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium"))


SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
SCREENSHOT_MAX_BYTES = 300 * 1024


class chromium_page:
    """Context manager: a page in headless Debian Chromium driven by Playwright.

    Console errors and uncaught page errors are collected in ``.errors`` so tests can assert
    that the page ran cleanly.
    """

    def __init__(self, *, width: int = 1400, height: int = 850):
        self.executable = chromium_or_skip()
        self.size = {"width": width, "height": height}
        self.errors: list[str] = []

    def __enter__(self):
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        self._browser = self._playwright.chromium.launch(
            executable_path=self.executable, args=CHROMIUM_ARGS
        )
        page = self._browser.new_page(viewport=self.size)
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        page.on(
            "console",
            lambda message: (
                message.type == "error" and self.errors.append(f"console: {message.text}")
            ),
        )
        page.set_default_timeout(20_000)
        self.page = page
        return self

    def __exit__(self, *exc):
        self._browser.close()
        self._playwright.stop()

    def screenshot(self, name: str) -> Path:
        # The pictures in docs/ change only on purpose (`make screenshots`), and only those the
        # docs show (already in docs/screenshots); ordinary test runs, and the pictures tests
        # take for a person debugging them, go to a scratch folder.
        refresh = os.environ.get("BIOSEGMENT_UPDATE_SCREENSHOTS") == "1"
        if refresh and (SCREENSHOTS / name).is_file():
            folder = SCREENSHOTS
        else:
            folder = Path(tempfile.gettempdir()) / "biosegment-screenshots"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        picture = Image.open(io.BytesIO(self.page.screenshot())).convert("RGB")
        # The committed pictures keep the repository small: as many colours (undithered, so
        # they compress) as fit in SCREENSHOT_MAX_BYTES; grey EM slices need few.
        for colours in (256, 128, 64, 48, 32):
            buffer = io.BytesIO()
            picture.quantize(
                colors=colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
            ).save(buffer, format="PNG", optimize=True)
            if buffer.tell() <= SCREENSHOT_MAX_BYTES:
                break
        path.write_bytes(buffer.getvalue())
        return path


@contextmanager
def cpu_daemon(tmp_path: Path, **model_options) -> Iterator:
    """A demo data folder with a tiny model, served by a real daemon on one CPU thread."""
    from biosegment.daemon import Daemon

    root = make_demo_folder(tmp_path / "data")
    make_tiny_model(root, **model_options)
    config = config_for(root)
    config = dataclasses.replace(
        config, engine=dataclasses.replace(config.engine, device="cpu", threads=1)
    )
    running = Daemon(config, server_factory=create_server).start()
    try:
        yield running
    finally:
        running.stop()
