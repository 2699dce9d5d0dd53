"""API downloads: a segmentation as TIFF or zipped OME-Zarr, read back with tifffile and
BioSegment's own reader; a model exported over HTTP loads back in onnxruntime and TorchScript;
conversions and exports beyond ``[limits] download_mb`` are refused before any work."""

from __future__ import annotations

import dataclasses
import io
import zipfile
from urllib.parse import quote

import numpy as np
import onnxruntime
import pytest
import tifffile
import torch

from biosegment.catalog import open_catalog, refresh
from biosegment.engine import load_model
from biosegment.volumes import open_volume
from biosegment.volumes.ome_zarr_writer import write_ome_zarr
from biosegment.volumes.writer import write_volume
from webui_fixtures import (
    DEMO_DATASET,
    Http,
    chromium_page,
    config_for,
    make_demo_folder,
    make_tiny_model,
    serve,
)

API = "/api/v1"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = make_demo_folder(tmp_path_factory.mktemp("downloads") / "data")
    make_tiny_model(root)
    with open_catalog(root) as catalog:
        shape = tuple(catalog.dataset(DEMO_DATASET)["shape"])
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, size=shape, dtype=np.uint8)
    folder = root / "segmentations" / DEMO_DATASET
    write_volume(folder / "as tiff" / "labels.tif", labels, voxel_size=(50.0, 4.0, 4.0))
    write_ome_zarr(
        folder / "as zarr" / "labels.ome.zarr",
        labels[::-1],
        classes=[{"id": 0, "name": "background"}, {"id": 1, "name": "membrane"}],
    )
    with open_catalog(root) as catalog:
        refresh(catalog, root)
    config = config_for(root)
    small = dataclasses.replace(config, limits=dataclasses.replace(config.limits, download_mb=1))
    with serve(config) as server, serve(small) as limited:
        yield Http(server.url), Http(limited.url), root, labels


def _segmentation(name: str, fmt: str) -> str:
    return f"{API}/datasets/{DEMO_DATASET}/segmentations/{quote(name)}/download/{fmt}"


def _read_zipped_store(body: bytes, tmp_path):
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        names = archive.namelist()
        archive.extractall(tmp_path)
    (top,) = {name.split("/")[0] for name in names}
    with open_volume(tmp_path / top) as reader:
        return top, reader.read_block(0, reader.shape[0])


def test_segmentation_as_tiff_and_ome_zarr_in_either_stored_format(site, tmp_path):
    http, _, root, labels = site
    reply = http.get(_segmentation("as tiff", "tiff"))
    assert reply.status == 200, reply.body
    assert reply.headers["Content-Type"] == "image/tiff"
    assert reply.headers["Content-Disposition"] == (
        f'attachment; filename="{DEMO_DATASET}-as_tiff.tif"'
    )
    np.testing.assert_array_equal(tifffile.imread(io.BytesIO(reply.body)), labels)
    # converted: the stored TIFF as an OME-Zarr label image, zipped as it is sent
    reply = http.get(_segmentation("as tiff", "ome-zarr"))
    assert reply.status == 200, reply.body
    assert reply.headers["Content-Type"] == "application/zip"
    assert "Content-Length" not in reply.headers  # streamed, never built whole
    top, volume = _read_zipped_store(reply.body, tmp_path / "converted")
    assert top == f"{DEMO_DATASET}-as_tiff.ome.zarr"
    np.testing.assert_array_equal(volume, labels)
    # the stored OME-Zarr store as it is, and converted to a TIFF
    reply = http.get(_segmentation("as zarr", "ome-zarr"))
    _, volume = _read_zipped_store(reply.body, tmp_path / "stored")
    np.testing.assert_array_equal(volume, labels[::-1])
    reply = http.get(_segmentation("as zarr", "tiff"))
    assert reply.status == 200, reply.body
    np.testing.assert_array_equal(tifffile.imread(io.BytesIO(reply.body)), labels[::-1])
    # nothing converted is left behind
    assert list((root / ".biosegment" / "downloads").iterdir()) == []


def test_bad_segmentation_downloads_name_the_problem(site):
    http, limited, _, _ = site
    assert http.get(_segmentation("nope", "tiff")).status == 404
    reply = http.get(_segmentation("as tiff", "png"))
    assert reply.status == 400 and reply.json()["field"] == "format"
    # the stored format needs no conversion and is sent whatever the limit
    assert limited.get(_segmentation("as tiff", "tiff")).status == 200
    reply = limited.get(_segmentation("as tiff", "ome-zarr"))
    assert reply.status == 413
    message = reply.json()["error"]
    assert "MiB" in message and "download_mb" in message and "fit" in message


def test_model_exports_load_back(site, tmp_path):
    http, limited, root, _ = site
    network, _ = load_model(root / "models" / "tiny-membrane")
    image = torch.rand((1, 1, 64, 64))
    with torch.no_grad():
        expected = network(image).numpy()
    reply = http.get(f"{API}/models/tiny-membrane/export/onnx")
    assert reply.status == 200, reply.body
    assert reply.headers["Content-Disposition"] == 'attachment; filename="tiny-membrane.onnx"'
    session = onnxruntime.InferenceSession(reply.body, providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"raw": image.numpy()})[0], expected, atol=1e-4)
    reply = http.get(f"{API}/models/tiny-membrane/export/torchscript")
    assert reply.status == 200, reply.body
    (tmp_path / "m.pt").write_bytes(reply.body)
    with torch.no_grad():
        scripted = torch.jit.load(str(tmp_path / "m.pt"))
        np.testing.assert_allclose(scripted(image).numpy(), expected, atol=1e-4)
    reply = http.get(f"{API}/models/tiny-membrane/export/bioimageio")
    assert reply.status == 200, reply.body
    with zipfile.ZipFile(io.BytesIO(reply.body)) as package:
        assert {"rdf.yaml", "weights.onnx", "weights.torchscript.pt"} <= set(package.namelist())
    assert http.get(f"{API}/models/nope/export/onnx").status == 404
    assert http.get(f"{API}/models/tiny-membrane/export/pt").status == 400
    reply = limited.get(f"{API}/models/tiny-membrane/export/onnx")
    assert reply.status == 413
    assert "biosegment models export tiny-membrane" in reply.json()["error"]
    assert list((root / ".biosegment" / "downloads").iterdir()) == []


@pytest.mark.browser
def test_download_links_in_the_viewer_and_on_the_model_page(site, tmp_path):
    http, _, _, labels = site
    with chromium_page() as browser:
        page = browser.page
        page.goto(f"{http.base}/datasets/{DEMO_DATASET}")
        page.wait_for_selector("#viewer[data-ready=true]")
        row = page.locator(".layer[data-layer='segmentation:as tiff']")
        assert row.locator("a[data-format=ome-zarr]").inner_text() == "Download OME-Zarr (zip)"
        with page.expect_download() as started:
            row.locator("a[data-format=tiff]").click()
        download = started.value
        assert download.suggested_filename == f"{DEMO_DATASET}-as_tiff.tif"
        download.save_as(tmp_path / "labels.tif")
        np.testing.assert_array_equal(tifffile.imread(tmp_path / "labels.tif"), labels)
        page.goto(f"{http.base}/models/tiny-membrane")
        link = page.locator("#model-export a[data-format=onnx]")
        assert link.inner_text() == "Export as ONNX"
        assert page.locator("#model-export a").all_inner_texts() == [
            "Export as ONNX",
            "Export as TorchScript",
            "Export as bioimage.io",
        ]
        with page.expect_download() as started:
            link.click()
        download = started.value
        assert download.suggested_filename == "tiny-membrane.onnx"
        download.save_as(tmp_path / "model.onnx")
        session = onnxruntime.InferenceSession(
            str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"]
        )
        assert session.get_inputs()[0].name == "raw"
        assert browser.errors == []
