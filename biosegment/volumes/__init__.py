"""Read and write the image volumes BioSegment works on.

Readers open multi-page TIFFs (``tif3d``/``tif2d``), folders of TIFF or PNG slices
(``tifseq``/``pngseq``), OME-Zarr images (``omezarr``, with their resolution pyramid), Zarr
arrays (``zarr``), N5 datasets (``n5``), HDF5 datasets (``hdf5``) and MRC files (``mrc``)
lazily: probing reads headers only, a slice costs one slice of I/O and chunked formats decode
only the chunks a read covers. Pixel types are uint8, uint16 and float32; RGB and
multi-channel images are rejected with a VolumeError for now. Writers put finished files in
place atomically, so no reader ever sees half a file. Everything a caller needs is importable
from here.
"""

from __future__ import annotations

from biosegment.volumes.base import (
    SUPPORTED_DTYPES,
    PyramidLevel,
    VolumeInfo,
    VolumeReader,
    normalise,
)
from biosegment.volumes.containers import CONTAINER_FILE_SUFFIXES, storage_path, volume_stem
from biosegment.volumes.labels import is_binary_mask, read_class_ids
from biosegment.volumes.limits import VolumeLimits, set_volume_limits, volume_limits
from biosegment.volumes.naming import IMAGE_SUFFIXES, natural_sort_key
from biosegment.volumes.ome_zarr_writer import OmeZarrWriter, write_ome_zarr
from biosegment.volumes.opening import (
    CONTAINER_TYPES,
    FILE_TYPES,
    detect_file_type,
    find_volume_in_folder,
    is_volume_container,
    open_volume,
    probe_volume,
)
from biosegment.volumes.png import annotation_slice_name, read_png_slice, write_png_slice
from biosegment.volumes.pyramid_cache import (
    PyramidCache,
    build_pyramid,
    needs_pyramid,
    open_with_pyramid,
)
from biosegment.volumes.writer import LabelVolumeWriter, write_volume

__all__ = [
    "FILE_TYPES",
    "CONTAINER_TYPES",
    "IMAGE_SUFFIXES",
    "SUPPORTED_DTYPES",
    "VolumeInfo",
    "VolumeReader",
    "PyramidLevel",
    "normalise",
    "open_volume",
    "probe_volume",
    "detect_file_type",
    "find_volume_in_folder",
    "is_volume_container",
    "storage_path",
    "volume_stem",
    "CONTAINER_FILE_SUFFIXES",
    "natural_sort_key",
    "LabelVolumeWriter",
    "write_volume",
    "OmeZarrWriter",
    "write_ome_zarr",
    "PyramidCache",
    "build_pyramid",
    "needs_pyramid",
    "open_with_pyramid",
    "read_class_ids",
    "is_binary_mask",
    "write_png_slice",
    "read_png_slice",
    "annotation_slice_name",
    "VolumeLimits",
    "set_volume_limits",
    "volume_limits",
]
