"""Scale raw pixels to the network's [0, 1] input the way a model card says.

Two methods exist. ``dtype_range`` divides by the pixel type's range (uint8 / 255), as the old
stack's models were trained. ``percentile`` maps a low and a high percentile of the whole
volume's pixels to 0 and 1 and clips the rest, so two microscopes that put the same tissue at
different grey levels give the network the same input; the percentiles are measured once per
volume on a sample of evenly spaced slices (never per window, which would stretch the contrast
of an empty corner as far as a busy one). Training on a volume and segmenting it use the same
functions, so a model sees its data scaled the same way in both.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from biosegment.errors import InputError
from biosegment.volumes.base import VolumeReader, normalise

__all__ = [
    "DTYPE_RANGE",
    "describe_normalisation",
    "percentile_normalisation",
    "volume_range",
    "IntensityScaler",
    "scaler_for",
]

#: The old stack's scaling: by the dtype's range.
DTYPE_RANGE = "dtype_range"
_PERCENTILE = "percentile"
# Slices sampled for the percentiles, and pixels taken from each at most (a strided grid).
_SAMPLE_SLICES = 16
_SAMPLE_PIXELS_PER_SLICE = 2**18


def percentile_normalisation(low: float = 1.0, high: float = 99.0) -> dict:
    """The card entry for percentile scaling: ``low`` -> 0 and ``high`` -> 1."""
    return {
        "method": _PERCENTILE,
        "low_percentile": float(low),
        "high_percentile": float(high),
        "range": [0.0, 1.0],
    }


def describe_normalisation(normalisation: Mapping | None) -> str:
    """In words, how a card's ``normalisation`` turns raw pixels into the network's [0, 1]
    (what a person running an exported network elsewhere must do to the image first)."""
    normalisation = normalisation or {}
    if normalisation.get("method", DTYPE_RANGE) == _PERCENTILE:
        low = float(normalisation.get("low_percentile", 1.0))
        high = float(normalisation.get("high_percentile", 99.0))
        return (
            f"the volume's percentile {low:g} maps to 0 and its percentile {high:g} to 1, "
            "values outside are clipped (BioSegment measures the percentiles once per volume)"
        )
    return (
        "divided by the pixel type's range: uint8 by 255, uint16 by 65535 (float32 is taken "
        "as already scaled, clipped)"
    )


def _sample(volume: VolumeReader | np.ndarray) -> np.ndarray:
    """Pixels of up to 16 evenly spaced slices, each thinned to about 2**18 pixels."""
    shape = tuple(volume.shape)
    if len(shape) == 2:
        shape = (1, *shape)
    depth, height, width = shape
    stride = max(1, int(np.ceil(np.sqrt(height * width / _SAMPLE_PIXELS_PER_SLICE))))
    picks = sorted({int(round(z)) for z in np.linspace(0, depth - 1, min(depth, _SAMPLE_SLICES))})
    pieces = []
    for z in picks:
        if isinstance(volume, VolumeReader):
            plane = volume.read_slice(z)
        else:
            plane = np.asarray(volume).reshape(shape)[z]
        pieces.append(np.asarray(plane)[::stride, ::stride].ravel())
    return np.concatenate(pieces)


def volume_range(
    volume: VolumeReader | np.ndarray, low: float = 1.0, high: float = 99.0
) -> tuple[float, float]:
    """The ``low`` and ``high`` percentiles of a volume's pixels (from a sample of slices).

    :param volume: a volume reader or a ``(z, y, x)`` / ``(y, x)`` array.
    :returns: ``(lo, hi)`` with ``hi > lo`` (a flat volume gets ``hi = lo + 1``).
    """
    values = _sample(volume).astype(np.float64)
    lo, hi = (float(v) for v in np.percentile(values, [low, high]))
    if not hi > lo:
        hi = lo + 1.0
    return lo, hi


class IntensityScaler:
    """Turns raw pixels of one volume into float32 in [0, 1] (callable on any block)."""

    def __init__(self, method: str = DTYPE_RANGE, value_range: tuple[float, float] | None = None):
        self.method = method
        self.value_range = value_range

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        if self.method == DTYPE_RANGE or self.value_range is None:
            return normalise(raw)
        lo, hi = self.value_range
        scaled = (raw.astype(np.float32) - np.float32(lo)) / np.float32(hi - lo)
        return np.clip(scaled, 0.0, 1.0, out=scaled)

    def describe(self) -> dict:
        """The method and, for percentiles, the grey values that became 0 and 1."""
        data: dict[str, object] = {"method": self.method}
        if self.value_range is not None:
            data["value_range"] = [float(v) for v in self.value_range]
        return data


def scaler_for(volume: VolumeReader | np.ndarray, normalisation: Mapping | None) -> IntensityScaler:
    """The scaler a model card's ``normalisation`` asks for, measured on ``volume``.

    :param normalisation: the card entry; None or ``dtype_range`` scale by the pixel type.
    :raises InputError: for a method BioSegment does not know, naming the card field.
    """
    normalisation = normalisation or {}
    method = normalisation.get("method", DTYPE_RANGE)
    if method == DTYPE_RANGE:
        return IntensityScaler()
    if method != _PERCENTILE:
        raise InputError(
            f"unknown normalisation method {method!r}; expected {DTYPE_RANGE} or {_PERCENTILE}",
            where="normalisation.method",
        )
    low = float(normalisation.get("low_percentile", 1.0))
    high = float(normalisation.get("high_percentile", 99.0))
    if not 0.0 <= low < high <= 100.0:
        raise InputError(
            f"percentiles must satisfy 0 <= low < high <= 100, got {low}, {high}",
            where="normalisation",
        )
    return IntensityScaler(_PERCENTILE, volume_range(volume, low, high))
