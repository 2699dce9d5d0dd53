"""`biosegment pyramid` builds the cached pyramid of large TIFF datasets, and the viewer's
zoomed-out tiles come from it."""

from __future__ import annotations

import json

import numpy as np
import tifffile
from click.testing import CliRunner

from biosegment.catalog import open_catalog, refresh
from biosegment.cli import main
from biosegment.datafolder import init_data_folder
from webui_fixtures import Http, config_for, png_pixels, serve


def invoke(root, *args):
    return CliRunner().invoke(main, ["--data", str(root), *args], catch_exceptions=False)


def test_pyramid_command_and_zoomed_out_tiles(tmp_path):
    root = tmp_path / "data"
    init_data_folder(root)
    rng = np.random.default_rng(2)
    big = rng.integers(0, 255, (2, 2100, 1300), dtype=np.uint8)
    tifffile.imwrite(root / "EM" / "big.tif", big, photometric="minisblack")
    tifffile.imwrite(root / "EM" / "small.tif", big[:, :300, :300], photometric="minisblack")
    with open_catalog(root) as catalog:
        refresh(catalog, root)
    with serve(config_for(root)) as server:
        http = Http(server.url)
        before = png_pixels(http.get("/api/v1/datasets/big/tiles/raw/z/1/1/0/0.png").body)
        np.testing.assert_array_equal(before, big[1, :1024:2, :1024:2])  # strided, no pyramid
        result = invoke(root, "pyramid", "--all", "--json")
        assert result.exit_code == 0, result.output
        by_name = {r["dataset"]: r for r in json.loads(result.output)}
        assert (
            by_name["big"]["built"] is True
            and ".biosegment/cache/pyramids" in by_name["big"]["store"]
        )
        assert by_name["small"] == {
            "dataset": "small",
            "built": False,
            "reason": "is small enough without one",
        }
        after = png_pixels(http.get("/api/v1/datasets/big/tiles/raw/z/1/1/0/0.png").body)
    pixels = big[1, :1024, :1024].astype(np.float64)
    means = np.rint(
        (pixels[0::2, 0::2] + pixels[1::2, 0::2] + pixels[0::2, 1::2] + pixels[1::2, 1::2]) / 4
    ).astype(np.uint8)
    np.testing.assert_array_equal(after, means)
    again = invoke(root, "pyramid", "big")
    assert again.exit_code == 0 and "big: pyramid up to date" in again.output
    assert invoke(root, "pyramid").exit_code == 2  # nothing named
