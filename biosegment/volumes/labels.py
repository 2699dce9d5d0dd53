"""Interpret label volumes (ground truth, segmentations) as class ids.

Class ids are 0 background, 1..N classes, 255 unlabeled (SPEC section 4). Binary masks stored as
0/255, the EPFL convention, mean background and class 1, so they are translated; any other
array passes through unchanged. Because 255 also means "unlabeled", the decision belongs to a
whole volume: a block of a multi-class volume may happen to contain only 0 and 255. Callers
reading block by block decide once with :func:`is_binary_mask` and pass ``binary=``.
Annotation slices use 255 for "not painted" and must not go through this translation.
"""

from __future__ import annotations

import numpy as np

from biosegment.volumes.base import VolumeReader

__all__ = ["read_class_ids", "is_binary_mask", "MASK_FOREGROUND"]

#: The foreground value of a 0/255 binary mask.
MASK_FOREGROUND = 255


def _values_are_binary_mask(array: np.ndarray) -> bool:
    if array.dtype == np.bool_:
        return True
    if array.dtype != np.uint8 or array.size == 0:
        return False
    # bincount on uint8 is one linear pass; np.unique would sort the whole volume.
    counts = np.bincount(array.ravel(), minlength=256)
    present = np.flatnonzero(counts)
    return bool(counts[MASK_FOREGROUND]) and set(present.tolist()) <= {0, MASK_FOREGROUND}


def is_binary_mask(volume: np.ndarray | VolumeReader) -> bool:
    """True if a uint8 array or volume holds only 0 and 255 (at least one 255), or is bool.

    For a reader, every slice is read once (one pass over the volume).
    """
    if isinstance(volume, VolumeReader):
        if volume.dtype != np.uint8:
            return False
        seen = np.zeros(256, dtype=bool)
        for z in range(volume.shape[0]):
            seen |= np.bincount(volume.read_slice(z).ravel(), minlength=256) > 0
            if seen[1:MASK_FOREGROUND].any():
                return False  # a class id other than 0/255 settles it early
        return bool(seen[MASK_FOREGROUND])
    return _values_are_binary_mask(np.asarray(volume))


def read_class_ids(array: np.ndarray, *, binary: bool | None = None) -> np.ndarray:
    """Return ``array`` as class ids: 0/255 masks (and bool masks) become 0/1 uint8.

    ``binary`` forces the decision (from :func:`is_binary_mask` on the whole volume);
    ``None`` decides from ``array`` itself. Arrays that are not binary masks come back as given.
    """
    values = np.asarray(array)
    if binary is None:
        binary = _values_are_binary_mask(values)
    if not binary:
        return values
    if values.dtype == np.bool_:
        return values.astype(np.uint8)
    return (values == MASK_FOREGROUND).astype(np.uint8)
