"""How much memory one block of a segmentation takes, estimated from shapes alone.

A block task holds three kinds of arrays at once: the block's results on the volume's grid
(class ids, and probabilities when asked for), the working arrays of the one region it is
computing (the pixels read, scaled, zoomed to the model's pixel size, the class scores, the
probabilities mapped back), and the network's activations for the batches in flight. The
plan (:mod:`biosegment.engine._plan`) sizes blocks, regions and batches so that each kind
stays within its share of :data:`MEMORY_BUDGET`. A zoom multiplies every array computed on the
zoomed grid by ``zoom ** 2``, which is why it is part of every figure here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "MEMORY_BUDGET",
    "NETWORK_PASSES",
    "BlockMemory",
    "Shares",
    "region_bytes_per_voxel",
    "network_bytes_per_voxel",
    "output_bytes_per_voxel",
]

#: Bytes one block task may take for its arrays, unless its settings give another budget.
MEMORY_BUDGET = 2**30
#: Forward passes that run side by side (the CPU path's worker threads, at most).
NETWORK_PASSES = 4
# Float32 feature maps alive per window voxel during a pass, in units of the network's
# feature_maps: the skip connections, concatenations, convolution and norm outputs and the
# layout conversions together. Measured: one 512x512 pass of the demo network (8 feature
# maps, 4 levels, instance norm) raised resident memory by 394 bytes per voxel, 12 x 8 x 4.
_LIVE_FEATURE_MAPS = 12


@dataclass(frozen=True, slots=True)
class Shares:
    """A memory budget divided among the block's results, one region and the network."""

    outputs: int
    region: int
    network: int

    @classmethod
    def of(cls, budget: int) -> Shares:
        """A quarter for the results, a quarter for a region, half for the network."""
        return cls(outputs=budget // 4, region=budget // 4, network=budget - 2 * (budget // 4))


@dataclass(frozen=True, slots=True)
class BlockMemory:
    """Estimated bytes of one block task's arrays, by kind."""

    outputs: int  # class ids (and probabilities) of the whole block, on the volume's grid
    region: int  # the largest region's working arrays, zoomed ones included
    network: int  # activations and results of the batches in flight

    @property
    def total(self) -> int:
        return self.outputs + self.region + self.network


def output_bytes_per_voxel(classes: int, probabilities: bool) -> int:
    """Bytes per volume voxel of a block's results: uint8 class ids and probabilities."""
    return 1 + (classes if probabilities else 0)


def region_bytes_per_voxel(
    itemsize: int, classes: int, probabilities: bool, zoom: float | None
) -> int:
    """Bytes per voxel *read* (volume grid) of a region's working arrays.

    Without a zoom: the pixels read, their float32 scaling, the class ids, the float32 class
    scores and weight sum, and the uint8 probabilities. With one, every voxel read becomes
    ``zoom ** 2`` voxels that carry the zoomed float32 pixels, the float32 scores, weight sum
    and the temporary of their uint8 conversion, uint8 probabilities and class ids, and the
    argmax's running maximum; back on the volume grid come the float32 probabilities, their
    rounded copies and the region's results.
    """
    if zoom is None:
        return itemsize + 4 + 1 + (classes + 1) * 4 + (classes if probabilities else 0)
    zoomed = 4 + classes * 4 + 4 + classes * 4 + classes + 1 + 5
    back = classes * 4 + 5 + 1 + ((classes * 8 + classes) if probabilities else 0)
    return int(itemsize + 4 + back + zoomed * zoom * zoom + 1)


def network_bytes_per_voxel(config: dict) -> int:
    """Bytes per window voxel of a batch: its activations in each pass running side by side,
    and for twice as many batches in flight, the float32 input and per-class results."""
    activations = 4 * _LIVE_FEATURE_MAPS * int(config["feature_maps"])
    in_flight = 4 * (1 + 2 * int(config["num_classes"]))
    return NETWORK_PASSES * activations + 2 * NETWORK_PASSES * in_flight
