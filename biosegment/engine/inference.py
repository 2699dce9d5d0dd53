"""Segment an image volume with a U-Net, streaming it block by block.

The volume is cut into z-blocks (:func:`plan_blocks`); each block is read, scaled to [0, 1],
covered by sliding windows that the network sees in batches, blended back together, and
turned into class ids (:func:`segment_block`). Peak memory depends on the block and window
sizes, never on the volume's size: blocks, tiles and batches are sized so that one block's
arrays fit a memory budget (:func:`block_memory`), the zoom to a model's pixel size included,
so very large or zoomed slices are cut into tiles. With an
output file, every finished block is saved in a hidden parts folder first, so a cancelled or
crashed run resumes where it stopped and several workers can share one volume; when all
blocks are there, :func:`assemble_parts` writes the final TIFF atomically and removes the
parts. :func:`segment_volume` does all of that in one call.

The defaults are the fast ones: one window per slice when the slice fits (up to 512x512, so
no voxel is computed twice), channels-last memory, and bfloat16 arithmetic on hardware that
multiplies it natively (labels agree with float32 to well within 0.5 % Dice; see
``benchmarks/RESULTS.md``). ``window=(256, 256), step=(128, 128)`` reproduces the old
``neuralnets`` sliding window with its Gaussian blend.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from biosegment.engine._block_memory import BlockMemory
from biosegment.engine._classes import (
    argmax_over_classes,
    probabilities_to_uint8,
    softmax_over_classes,
)
from biosegment.engine._parts import (
    PartsFolder,
    PartsPlan,
    assemble_parts,
    default_parts_dir,
    finished_blocks,
)
from biosegment.engine._plan import Plan, accumulates, make_plan, regions, window_grid, window_jobs
from biosegment.engine._predictor import WindowPredictor
from biosegment.engine._windows import gaussian_weights
from biosegment.engine.device import has_fast_bfloat16, resolve_device
from biosegment.engine.intensity import scaler_for
from biosegment.engine.pixel_size import unzoom_plane, zoom_plane, zoomed_shape
from biosegment.engine.precision import AUTO_PRECISION, PRECISIONS
from biosegment.engine.unet import UNet
from biosegment.errors import CancelledError, InputError
from biosegment.volumes import LabelVolumeWriter
from biosegment.volumes.base import VolumeReader

__all__ = [
    "InferenceSettings",
    "BlockResult",
    "BLENDS",
    "PRECISIONS",
    "plan_blocks",
    "block_plan",
    "block_memory",
    "BlockMemory",
    "segment_block",
    "assemble_parts",
    "finished_blocks",
    "segment_volume",
    "resolve_precision",
    "default_parts_dir",
]

#: How overlapping windows are combined: weighted by a centred Gaussian (as neuralnets did),
#: or cut at the middle of each overlap so every voxel comes from one window.
BLENDS = ("gaussian", "crop")

ProgressCallback = Callable[[float], None]
CancelCallback = Callable[[], bool]


@dataclass(frozen=True, slots=True)
class InferenceSettings:
    """How a volume is cut into windows and computed; ``None`` means "choose for me".

    - ``window``: (y, x) for 2-D networks, (z, y, x) for 3-D ones; rounded up to a multiple
      of ``2 ** levels``. Default: one window per slice up to 512x512 (3-D: 64 per axis).
    - ``overlap``: voxels shared by neighbouring windows, one number or one per axis.
      Default: none when one window covers an axis, else ``2 ** (levels + 1)`` (at most a
      quarter window). It is also the context read beyond a block or tile edge.
    - ``blend``: ``gaussian`` (sigma = ``sigma_scale`` * window) or ``crop``.
    - ``batch_size``: windows per forward pass; default fills 2**18 voxels.
    - ``precision``: ``auto``, ``fp32`` or ``bf16``; ``device``: see ``resolve_device``.
    - ``block_z``: slices per block (the unit of resuming and of work split between workers).
    - ``normalisation``: the model card's entry saying how raw pixels become [0, 1] (see
      :mod:`biosegment.engine.intensity`); None scales by the pixel type's range.
    - ``zoom``: in-plane zoom of every slice before the network sees it (see
      :mod:`biosegment.engine.pixel_size`); the labels come back on the volume's own grid.
    - ``memory_budget``: bytes one block's arrays may take (results, the region computed,
      zoomed copies and network activations); blocks, tiles and batches are sized to fit it.
      Default: :data:`~biosegment.engine._block_memory.MEMORY_BUDGET` (1 GiB).
    """

    window: tuple[int, ...] | None = None
    overlap: int | tuple[int, ...] | None = None
    blend: str = "gaussian"
    sigma_scale: float = 0.25
    batch_size: int | None = None
    precision: str = "auto"
    device: str = "auto"
    block_z: int | None = None
    normalisation: dict | None = None
    zoom: float | None = None
    memory_budget: int | None = None

    def __post_init__(self) -> None:
        if self.zoom is not None and not (
            isinstance(self.zoom, (int, float))
            and not isinstance(self.zoom, bool)
            and 0.1 <= self.zoom <= 10.0
        ):
            raise InputError("zoom must be a number between 0.1 and 10", where="zoom")
        if self.normalisation is not None and not isinstance(self.normalisation, dict):
            raise InputError(
                "normalisation must be a model card's normalisation object", where="normalisation"
            )
        if self.blend not in BLENDS:
            raise InputError(
                f"unknown blend {self.blend!r}; use {' or '.join(BLENDS)}", where="blend"
            )
        if self.precision not in PRECISIONS:
            raise InputError(
                f"unknown precision {self.precision!r}; use {', '.join(PRECISIONS)}",
                where="precision",
            )
        if not (isinstance(self.sigma_scale, (int, float)) and self.sigma_scale > 0):
            raise InputError("sigma_scale must be a positive number", where="sigma_scale")
        for name in ("batch_size", "block_z", "memory_budget"):
            value = getattr(self, name)
            if value is not None and not _positive_int(value):
                raise InputError(f"{name} must be a positive integer", where=name)
        if self.window is not None:
            object.__setattr__(self, "window", tuple(self.window))
            if not self.window or not all(_positive_int(v) for v in self.window):
                raise InputError("window must be positive sizes", where="window")
        if isinstance(self.overlap, (list, tuple)):
            object.__setattr__(self, "overlap", tuple(self.overlap))
        overlaps = self.overlap if isinstance(self.overlap, tuple) else (self.overlap,)
        if self.overlap is not None and not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in overlaps
        ):
            raise InputError("overlap must be non-negative integers", where="overlap")

    def as_dict(self) -> dict:
        """The settings as plain data, e.g. to pass them to a worker.

        :returns: a JSON-ready dict of every field (tuples become lists).
        """
        data = asdict(self)
        for key in ("window", "overlap"):
            if isinstance(data[key], tuple):
                data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict) -> InferenceSettings:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass(frozen=True, slots=True)
class BlockResult:
    """Class ids (uint8, ``(z1 - z0, Y, X)``) of one z-block, and optionally probabilities
    (uint8, ``(classes, z1 - z0, Y, X)``, 0..255 for 0..1)."""

    z0: int
    z1: int
    labels: np.ndarray
    probabilities: np.ndarray | None = None


def _positive_int(value: object) -> bool:
    return bool(isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1)


def resolve_precision(precision: str, device: torch.device) -> str:
    """``fp32`` or ``bf16`` for ``precision`` on ``device`` (``auto``: bf16 where it is fast)."""
    if precision == AUTO_PRECISION:
        return "bf16" if has_fast_bfloat16(device) else "fp32"
    return precision


def plan_blocks(shape: tuple[int, int, int], block_z: int) -> list[tuple[int, int]]:
    """Split ``shape[0]`` slices into ``[z0, z1)`` blocks of ``block_z`` (the last may be short).

    :param shape: the volume's (z, y, x).
    :param block_z: slices per block.
    :returns: the blocks in order; together they cover every slice once.
    """
    if not _positive_int(block_z):
        raise ValueError(f"block_z must be a positive integer, not {block_z!r}")
    depth = int(shape[0])
    return [(z0, min(z0 + block_z, depth)) for z0 in range(0, depth, block_z)]


def _check_inputs(volume: VolumeReader, model: UNet) -> None:
    config = model.config
    if config["in_channels"] != 1:
        raise InputError(
            f"the model expects {config['in_channels']} input channels but volumes have one",
            where="model",
        )
    if config["num_classes"] > 255:
        raise InputError("more than 255 classes cannot be stored as uint8 class ids", where="model")
    if np.dtype(volume.dtype) not in (np.uint8, np.uint16, np.float32):
        raise InputError(f"cannot segment {volume.dtype} pixels", source=volume.info.path)


# --------------------------------------------------------------------------- computing


class _PlannedPredictor(WindowPredictor):
    """The window predictor plus the plan and blend weights every window of a run shares."""

    def __init__(self, model: UNet, plan: Plan, settings: InferenceSettings, volume: VolumeReader):
        device = resolve_device(settings.device)
        super().__init__(model, device, resolve_precision(settings.precision, device))
        # Regions are read on the volume's grid; the plan's windows are on the zoomed one.
        self.plan = plan
        self.zoom = plan.zoom
        # Measured on the whole volume (a sample of slices), the same for every block.
        self.scale = scaler_for(volume, settings.normalisation)
        window = plan.window[1:] if plan.dims == 2 else plan.window
        weights = gaussian_weights(tuple(window), plan.sigma_scale)
        self.weights = torch.from_numpy(weights.reshape(plan.window))


def _cut_window(pixels: np.ndarray, start: tuple[int, ...], window: tuple[int, ...]) -> np.ndarray:
    piece = pixels[tuple(slice(s, s + w) for s, w in zip(start, window))]
    missing = [(0, w - n) for w, n in zip(window, piece.shape)]
    if any(after for _, after in missing):
        # The window is larger than the data along this axis: mirror the image into the gap,
        # which disturbs the network (and instance-norm statistics) less than zeros would.
        piece = np.pad(piece, missing, mode="reflect" if min(piece.shape) > 1 else "edge")
    return piece


def _predict_region(
    pixels: np.ndarray,
    core: tuple[tuple[int, int], ...],
    predictor: _PlannedPredictor,
    want_probabilities: bool,
    tick: Callable[[int], None],
) -> tuple[np.ndarray, np.ndarray | None]:
    """Class ids (and probabilities) of the ``core`` of a scaled region ``(rz, ry, rx)``."""
    plan = predictor.plan
    core_shape = tuple(b - a for a, b in core)
    core_origin = tuple(a for a, _ in core)
    jobs = window_jobs(pixels.shape, core, plan)
    accumulate = accumulates(window_grid(pixels.shape, plan), plan)
    classes = plan.num_classes
    labels = np.empty(core_shape, dtype=np.uint8)
    probabilities = np.empty((classes, *core_shape), dtype=np.uint8) if want_probabilities else None
    if accumulate:
        # float32 sums: the old library's float64 changes no label and costs twice the memory.
        scores = torch.zeros((classes, *core_shape), dtype=torch.float32)
        weight_sum = torch.zeros(core_shape, dtype=torch.float32) if want_probabilities else None

    def cut(batch_jobs: list) -> np.ndarray:
        return np.stack([_cut_window(pixels, start, plan.window) for start, _ in batch_jobs])

    def finish(logits: torch.Tensor, batch_jobs: list) -> list[tuple]:
        # Runs in a worker thread: everything per window that does not touch shared arrays.
        results: list[tuple] = []
        for (start, box), window_logits in zip(batch_jobs, logits):
            local = tuple(slice(a - s, b - s) for (a, b), s in zip(box, start))
            part = window_logits[(slice(None), *local)]
            if accumulate:
                weights = predictor.weights[local]
                results.append((box, softmax_over_classes(part).mul_(weights), weights))
            else:
                kept = (
                    probabilities_to_uint8(softmax_over_classes(part)).numpy()
                    if want_probabilities
                    else None
                )
                results.append((box, argmax_over_classes(part).numpy(), kept))
        return results

    batches = [jobs[i : i + plan.batch_size] for i in range(0, len(jobs), plan.batch_size)]
    for results in predictor.map(batches, cut, finish):
        for box, first, second in results:
            target = tuple(slice(a - o, b - o) for (a, b), o in zip(box, core_origin))
            if accumulate:
                scores[(slice(None), *target)] += first
                if weight_sum is not None:
                    weight_sum[target] += second
            else:
                labels[target] = first
                if probabilities is not None:
                    probabilities[(slice(None), *target)] = second
        tick(len(results))
    if accumulate:
        labels[...] = argmax_over_classes(scores).numpy()
        if probabilities is not None and weight_sum is not None:
            probabilities[...] = probabilities_to_uint8(scores.div_(weight_sum)).numpy()
    return labels, probabilities


def _window_shape(read: tuple[slice, ...], predictor: _PlannedPredictor) -> tuple[int, ...]:
    shape = tuple(s.stop - s.start for s in read)
    return shape if predictor.zoom is None else zoomed_shape(shape, predictor.zoom)


def _window_core(
    read: tuple[slice, ...], core: tuple[tuple[int, int], ...], predictor: _PlannedPredictor
) -> tuple[tuple[int, int], ...]:
    # A zoomed region is computed whole (its context too): the core is cut after unzooming.
    if predictor.zoom is None:
        return core
    return tuple((0, n) for n in _window_shape(read, predictor))


def _predict_zoomed(
    pixels: np.ndarray,
    core: tuple[tuple[int, int], ...],
    predictor: _PlannedPredictor,
    zoom: float,
    want_probabilities: bool,
    tick: Callable[[int], None],
) -> tuple[np.ndarray, np.ndarray | None]:
    """Like :func:`_predict_region`, on slices zoomed to the model's pixel size.

    Class probabilities are resampled back to the region's grid before the argmax, so
    labels follow the interpolated boundaries instead of blocky nearest-neighbour steps.
    """
    zoomed = zoom_plane(pixels, zoom)
    whole = tuple((0, n) for n in zoomed.shape)
    _, probabilities = _predict_region(zoomed, whole, predictor, True, tick)
    assert probabilities is not None  # asked for
    back = unzoom_plane(probabilities, pixels.shape)[(slice(None), *(slice(a, b) for a, b in core))]
    labels = argmax_over_classes(torch.from_numpy(back)).numpy().astype(np.uint8)
    kept = np.clip(np.rint(back), 0, 255).astype(np.uint8) if want_probabilities else None
    return labels, kept


def _segment_range(
    volume: VolumeReader,
    predictor: _PlannedPredictor,
    z0: int,
    z1: int,
    want_probabilities: bool,
    progress: ProgressCallback | None,
    should_cancel: CancelCallback | None,
) -> BlockResult:
    plan = predictor.plan
    _, height, width = volume.shape
    labels = np.empty((z1 - z0, height, width), dtype=np.uint8)
    probabilities = (
        np.empty((plan.num_classes, z1 - z0, height, width), dtype=np.uint8)
        if want_probabilities
        else None
    )
    pieces = list(regions(volume.shape, plan, z0, z1))
    total = sum(
        len(
            window_jobs(
                _window_shape(read, predictor), _window_core(read, core, predictor), predictor.plan
            )
        )
        for read, core in pieces
    )
    done = 0

    def tick(count: int) -> None:
        nonlocal done
        done += count
        if progress is not None:
            progress(min(1.0, done / max(total, 1)))
        if should_cancel is not None and should_cancel():
            raise CancelledError("segmentation cancelled")

    tick(0)
    for (zs, ys, xs), core in pieces:
        pixels = predictor.scale(volume.read_block(zs.start, zs.stop, ys, xs))
        if predictor.zoom is None:
            region_labels, region_probabilities = _predict_region(
                pixels, core, predictor, want_probabilities, tick
            )
        else:
            region_labels, region_probabilities = _predict_zoomed(
                pixels, core, predictor, predictor.zoom, want_probabilities, tick
            )
        # The core in block coordinates.
        where = tuple(
            slice(a + s.start - offset, b + s.start - offset)
            for (a, b), s, offset in zip(core, (zs, ys, xs), (z0, 0, 0))
        )
        labels[where] = region_labels
        if probabilities is not None and region_probabilities is not None:
            probabilities[(slice(None), *where)] = region_probabilities
    return BlockResult(z0, z1, labels, probabilities)


# --------------------------------------------------------------------------- public API


def _fingerprint(
    volume: VolumeReader, model: UNet, settings: InferenceSettings, probabilities: bool
) -> str:
    """Identify the computation, so parts of another model, volume or setting never mix."""
    digest = hashlib.sha256()
    info = volume.info
    try:
        stat = Path(info.path).stat()
        modified: int | None = stat.st_mtime_ns
        size: int | None = stat.st_size
    except OSError:
        modified = size = None
    # The device is left out: workers on different machines may share one segmentation. An
    # unset memory budget too, so parts saved before there was one still count.
    chosen = {
        k: v
        for k, v in settings.as_dict().items()
        if k != "device" and not (k == "memory_budget" and v is None)
    }
    # The file's name, size and time, not its absolute path: workers on other machines mount
    # the data folder elsewhere and must still recognise each other's parts.
    digest.update(
        json.dumps(
            {
                "volume": Path(info.path).name,
                "size": size,
                "shape": list(info.shape),
                "dtype": info.dtype,
                "modified": modified,
                "model": model.config,
                "settings": chosen,
                "probabilities": probabilities,
            },
            sort_keys=True,
        ).encode()
    )
    for key, tensor in model.state_dict().items():
        digest.update(key.encode())
        digest.update(tensor.detach().to("cpu").contiguous().numpy().tobytes())
    return digest.hexdigest()


def _parts_plan(
    volume: VolumeReader, model: UNet, settings: InferenceSettings, plan: Plan, probabilities: bool
) -> PartsPlan:
    depth, height, width = volume.shape
    return PartsPlan(
        shape=(depth, height, width),
        blocks=tuple(plan_blocks(volume.shape, plan.block_z)),
        num_classes=plan.num_classes,
        probabilities=probabilities,
        fingerprint=_fingerprint(volume, model, settings, probabilities),
    )


def _volume_plan(
    volume: VolumeReader, model: UNet, settings: InferenceSettings, probabilities: bool
) -> Plan:
    """The plan of ``settings`` for this network and volume (see :func:`make_plan`)."""
    return make_plan(settings, model.config, volume.shape, volume.dtype.itemsize, probabilities)


def block_plan(
    volume: VolumeReader,
    model: UNet,
    settings: InferenceSettings | None = None,
    *,
    probabilities: bool = False,
) -> list[tuple[int, int]]:
    """The z-blocks :func:`segment_block` expects for this volume, model and settings.

    Blocks are sized so that one block's arrays fit the settings' memory budget, the zoom
    to the model's pixel size included (see :func:`block_memory`).

    :param volume: the open volume.
    :param model: the network whose architecture the plan is made for.
    :param settings: windows, blend, precision, device, block size (default settings when None).
    :param probabilities: whether the blocks will also keep class probabilities.
    :returns: ``[z0, z1)`` pairs in order, covering every slice once.
    :raises InputError: for settings that do not fit the model or the memory budget.
    """
    plan = _volume_plan(volume, model, settings or InferenceSettings(), probabilities)
    return plan_blocks(volume.shape, plan.block_z)


def block_memory(
    volume: VolumeReader,
    model: UNet,
    settings: InferenceSettings | None = None,
    *,
    probabilities: bool = False,
) -> BlockMemory:
    """The estimated bytes one block of :func:`block_plan` takes, by kind of array.

    :param volume: the open volume.
    :param model: the network whose architecture the plan is made for.
    :param settings: as for :func:`block_plan`; its ``memory_budget`` is what the plan keeps to.
    :param probabilities: whether the blocks will also keep class probabilities.
    :returns: the block's results, its largest region's working arrays (zoomed ones
        included) and the network's batches in flight; ``total`` is at most the settings'
        ``memory_budget`` unless a single window of the network is larger than its share.
    """
    plan = _volume_plan(volume, model, settings or InferenceSettings(), probabilities)
    return plan.memory


def segment_block(
    volume: VolumeReader,
    model: UNet,
    z0: int,
    z1: int,
    *,
    settings: InferenceSettings | None = None,
    parts_dir: Path | None = None,
    probabilities: bool = False,
    progress: ProgressCallback | None = None,
    should_cancel: CancelCallback | None = None,
) -> BlockResult:
    """Segment slices ``[z0, z1)`` of ``volume``; one task of a split segmentation.

    :param volume: the open volume.
    :param model: the network (left unchanged; a prepared copy of its weights is used).
    :param z0: first slice of the block.
    :param z1: one past its last slice.
    :param settings: windows, blend, precision, device, block size.
    :param parts_dir: when given, ``(z0, z1)`` must be one of :func:`block_plan`'s blocks; a
        part already there is returned without computing, a new one is saved there.
    :param probabilities: also return (and save) class probabilities.
    :param progress: called with the fraction of this block done, after each batch.
    :param should_cancel: polled between batches; when it returns True the block stops with
        :class:`CancelledError` (nothing is saved for it).
    :returns: the block's class ids (and probabilities).
    :raises InputError: for settings that do not fit the model, or a parts folder of another
        segmentation.
    """
    settings = settings or InferenceSettings()
    _check_inputs(volume, model)
    if not (0 <= z0 < z1 <= volume.shape[0]):
        raise ValueError(f"block {z0}:{z1} outside the volume's {volume.shape[0]} slices")
    plan = _volume_plan(volume, model, settings, probabilities)
    folder = None
    if parts_dir is not None:
        folder = PartsFolder(parts_dir)
        parts_plan = _parts_plan(volume, model, settings, plan, probabilities)
        if (z0, z1) not in parts_plan.blocks:
            raise ValueError(f"block {z0}:{z1} is not in the block plan {parts_plan.blocks}")
        folder.adopt(parts_plan, discard_other=False)
        if folder.has(z0, z1, probabilities=probabilities):
            return _load_part(folder, z0, z1, probabilities)
    with _PlannedPredictor(model, plan, settings, volume) as predictor, torch.inference_mode():
        result = _segment_range(volume, predictor, z0, z1, probabilities, progress, should_cancel)
    if folder is not None:
        folder.save(z0, z1, result.labels, result.probabilities)
    return result


def _load_part(folder: PartsFolder, z0: int, z1: int, probabilities: bool) -> BlockResult:
    return BlockResult(
        z0, z1, folder.load(z0, z1), folder.load(z0, z1, "probabilities") if probabilities else None
    )


def segment_volume(
    volume: VolumeReader,
    model: UNet,
    *,
    output: Path | None = None,
    probabilities: Path | None = None,
    window: tuple[int, ...] | None = None,
    overlap: int | tuple[int, ...] | None = None,
    step: int | tuple[int, ...] | None = None,
    blend: str = "gaussian",
    sigma_scale: float = 0.25,
    batch_size: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    block_z: int | None = None,
    normalisation: dict | None = None,
    zoom: float | None = None,
    memory_budget: int | None = None,
    voxel_size: tuple[float, float, float] | None = None,
    parts_dir: Path | None = None,
    compression: str | None = "zlib",
    progress: ProgressCallback | None = None,
    should_cancel: CancelCallback | None = None,
) -> np.ndarray | Path:
    """Segment a whole volume into class ids.

    :param volume: the open volume (any :class:`VolumeReader`).
    :param model: the U-Net (2-D networks run slice by slice, 3-D ones on 3-D windows).
    :param output: label TIFF to write. Without it the labels are returned as an array
        (memory grows with the volume: for small volumes and tests).
    :param probabilities: folder for per-class probability TIFFs (needs ``output``).
    :param window: window size, see :class:`InferenceSettings`; default: whole slices.
    :param overlap: voxels shared by neighbouring windows.
    :param step: the old library's way to say overlap: ``window - step`` (needs ``window``).
    :param blend: ``gaussian`` or ``crop``.
    :param sigma_scale: the Gaussian's sigma as a fraction of the window size.
    :param batch_size: windows per forward pass.
    :param device: ``auto``, ``cpu``, ``cuda``, ``cuda:<n>``, ``mps``.
    :param precision: ``auto`` (bfloat16 where the hardware has it), ``fp32`` or ``bf16``.
    :param block_z: slices per block: the unit of resuming.
    :param normalisation: the model card's ``normalisation`` (default: by the pixel type).
    :param zoom: in-plane zoom before the network (see :func:`~biosegment.engine.pixel_size.
        zoom_for`); labels are returned on the volume's grid.
    :param memory_budget: bytes one block's arrays may take (see :class:`InferenceSettings`).
    :param voxel_size: (z, y, x) in nm recorded in the output files, when the caller knows
        better than the volume's own header (a data folder's ``setup.json``); default: the
        volume's.
    :param parts_dir: where finished blocks wait (default: ``.<output name>.parts`` beside
        ``output``); a rerun with the same model, volume and settings skips them.
    :param compression: TIFF compression of the outputs.
    :param progress: called with the fraction done (0..1) as batches finish.
    :param should_cancel: polled between batches; True stops the run with
        :class:`CancelledError`; finished blocks stay in the parts folder for a rerun.
    :returns: ``output`` when given, else the uint8 class ids ``(z, y, x)``.
    :raises InputError: for invalid settings or a model that does not fit the volume.
    """
    if step is not None:
        if window is None:
            raise InputError("step needs an explicit window", where="step")
        steps = (step,) * len(window) if isinstance(step, int) else tuple(step)
        if overlap is not None or len(steps) != len(window) or min(steps) < 1:
            raise InputError(
                "give step (one positive value per window axis) or overlap, not both", where="step"
            )
        overlap = tuple(max(0, w - s) for w, s in zip(window, steps))
    if probabilities is not None and output is None:
        raise InputError(
            "probabilities are written beside an output file; give output", where="probabilities"
        )
    settings = InferenceSettings(
        window=window,
        overlap=overlap,
        blend=blend,
        sigma_scale=sigma_scale,
        batch_size=batch_size,
        precision=precision,
        device=device,
        block_z=block_z,
        normalisation=normalisation,
        zoom=zoom,
        memory_budget=memory_budget,
    )
    _check_inputs(volume, model)
    want_probabilities = probabilities is not None
    plan = _volume_plan(volume, model, settings, want_probabilities)
    blocks = plan_blocks(volume.shape, plan.block_z)
    folder = None
    if output is not None:
        folder = PartsFolder(parts_dir or default_parts_dir(Path(output)))
        folder.adopt(
            _parts_plan(volume, model, settings, plan, want_probabilities), discard_other=True
        )
        blocks = [b for b in blocks if not folder.has(*b, probabilities=want_probabilities)]
    labels = None if output is not None else np.empty(volume.shape, dtype=np.uint8)
    depth = volume.shape[0]
    remaining = sum(z1 - z0 for z0, z1 in blocks)
    finished = depth - remaining
    with _PlannedPredictor(model, plan, settings, volume) as predictor, torch.inference_mode():
        for z0, z1 in blocks:
            block_progress = None
            if progress is not None:

                def block_progress(fraction, _done=finished, _size=z1 - z0):
                    progress((_done + fraction * _size) / depth)

            result = _segment_range(
                volume, predictor, z0, z1, want_probabilities, block_progress, should_cancel
            )
            if folder is not None:
                folder.save(z0, z1, result.labels, result.probabilities)
            else:
                assert labels is not None  # no output file: the labels are returned
                labels[z0:z1] = result.labels
            finished += z1 - z0
    if folder is None:
        assert labels is not None  # no output file: the labels are returned
        if progress is not None:
            progress(1.0)
        return labels
    assert output is not None  # the parts folder is the output's
    written = _write_outputs(
        folder, Path(output), probabilities, voxel_size or volume.voxel_size, compression
    )
    if progress is not None:
        progress(1.0)
    return written


def _write_outputs(
    folder: PartsFolder,
    output: Path,
    probabilities: Path | None,
    voxel_size: tuple[float, float, float] | None,
    compression: str | None,
) -> Path:
    """The label TIFF (and a TIFF per class of probabilities) from a complete parts folder."""

    plan = folder.complete_plan()

    def tiff(path: Path) -> LabelVolumeWriter:
        return LabelVolumeWriter(
            path, plan.shape, dtype="uint8", compression=compression, voxel_size=voxel_size
        )

    if probabilities is not None:
        Path(probabilities).mkdir(parents=True, exist_ok=True)
        for class_id in range(plan.num_classes):
            assemble_parts(
                folder,
                tiff(Path(probabilities) / f"class_{class_id}.tif"),
                class_id=class_id,
                keep=True,
            )
    return assemble_parts(folder, tiff(output))
