"""API downloads: a segmentation as a TIFF or a zipped OME-Zarr store, a model as an export.

Both are GET requests, so whoever may read the data folder may download (see
:mod:`biosegment.webui.access_policy`). Answers are attachments with a safe file name, sent a
block at a time (:mod:`biosegment.webui.download_files`); what must be made first (a
conversion, :mod:`biosegment.webui.segmentation_download`; an export,
:mod:`biosegment.webui.model_download`) is checked against ``[limits] download_mb`` before any
work starts.
"""

from __future__ import annotations

from flask_openapi3 import APIBlueprint, Tag

from biosegment.errors import NotFoundError
from biosegment.webui.api import API_PREFIX
from biosegment.webui.api.schemas import ModelExportPath, SegmentationDownloadPath
from biosegment.webui.context import web_state
from biosegment.webui.download_files import (
    file_download,
    remove_scratch,
    safe_file_name,
    scratch_folder,
    zip_download,
)
from biosegment.webui.layers import LayerRef
from biosegment.webui.model_download import export_model
from biosegment.webui.segmentation_download import DOWNLOAD_FORMATS, prepare_download
from biosegment.webui.summaries import dataset_classes

__all__ = ["api"]

api = APIBlueprint(
    "downloads_api",
    __name__,
    url_prefix=API_PREFIX,
    abp_tags=[Tag(name="downloads", description="Segmentations and models as files to take away")],
)


_DOWNLOAD_RESPONSES: dict = {200: None, 400: None, 404: None, 413: None, 507: None}


@api.get(
    "/datasets/<dataset>/segmentations/<name>/download/<format>", responses=_DOWNLOAD_RESPONSES
)
def download_segmentation(path: SegmentationDownloadPath):
    """The segmentation's label volume as a file: ``tiff`` (a multi-page TIFF with ImageJ
    calibration) or ``ome-zarr`` (an OME-Zarr label image, zipped). The stored format is sent as
    it is; the other is converted first, which answers 413 when it would take more memory than
    ``[limits] download_mb`` allows and 507 when the scratch disk is short."""
    state = web_state()
    catalog = state.catalog()
    volume = state.layers.layer_path(catalog, LayerRef(path.dataset, "segmentation", path.name))
    classes = dataset_classes(catalog, catalog.dataset(path.dataset))
    prepared = prepare_download(
        state.config,
        volume,
        path.format,
        classes=classes,
        make_scratch=lambda: scratch_folder(state.config),
    )
    suffix = DOWNLOAD_FORMATS[path.format]
    file_name = safe_file_name(f"{path.dataset}-{path.name}", suffix)
    if prepared.is_folder:
        return zip_download(prepared.path, file_name, f"{file_name}.zip", scratch=prepared.scratch)
    return file_download(prepared.path, file_name, "image/tiff", scratch=prepared.scratch)


@api.get("/models/<model>/export/<format>", responses=_DOWNLOAD_RESPONSES | {503: None})
def export_model_file(path: ModelExportPath):
    """The model exported as ``onnx``, ``torchscript`` or ``bioimageio`` (a bioimage.io Model
    Zoo package with all three weight formats), as ``biosegment models export`` writes it.
    It runs in the web server, one export at a time (a few seconds for the demo model); 413
    when the model is too large for ``[limits] download_mb``."""
    state = web_state()
    catalog = state.catalog()
    row = catalog.model(path.model)
    if not row.get("location"):
        raise NotFoundError(f"model {path.model!r} has no weights in the data folder")
    checkpoint = catalog.path_of(row)
    scratch = scratch_folder(state.config)
    try:
        exported, file_name = export_model(
            state.config,
            path.model,
            checkpoint,
            row.get("architecture") or {},
            path.format,
            scratch,
        )
    except BaseException:
        remove_scratch(scratch)
        raise
    mimetype = "application/zip" if path.format == "bioimageio" else "application/octet-stream"
    return file_download(exported, file_name, mimetype, scratch=scratch)
