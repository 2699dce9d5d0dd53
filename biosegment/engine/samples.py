"""Turn labelled volumes into training batches and a validation set.

Training data arrives as (image, labels) pairs. Labels are class ids with 255 for unlabelled
pixels, either dense ground truth (a whole volume) or sparse annotations: a mapping from slice
index to a painted slice, or a volume where unpainted slices are all 255. Only the slices that
carry labels are read into memory (a volume reader costs one slice of I/O per labelled slice),
kept in their raw dtype and scaled to [0, 1] per crop, by the pixel type's range or by the
stack's own scaler (a model card's percentiles, measured on the whole volume): a 4096² uint8
slice stays 16 MB, where scaled floats would take 64.

Validation is carved out of the labelled material itself, never out of a fixed z range:
whole labelled slices are held out when there are enough of them, otherwise whole painted
strokes (of sparse annotations) or the right-most part (by x) of fully labelled slices, so
even a single painted slice yields a validation part that training never sees. Crops are
drawn around labelled pixels, so sparse scribbles are seen as often as dense ground truth
would be; with strokes alone, around each painted class equally often, however much more of
one class a person painted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from biosegment.engine.augment import AugmentConfig, augment_pair, crop_at
from biosegment.engine.intensity import IntensityScaler, scaler_for
from biosegment.engine.metrics import IGNORE_LABEL
from biosegment.errors import InputError
from biosegment.volumes.base import VolumeReader, normalise

__all__ = [
    "IGNORE_LABEL",
    "TrainingPair",
    "LabelledStack",
    "collect_stacks",
    "split_validation",
    "describe_stacks",
    "guard_masks",
    "SamplePool",
]

# Above this labelled fraction a stack counts as dense and crops are placed uniformly.
_DENSE_FRACTION = 0.5
# Tries to find a crop holding at least one labelled pixel before falling back to an anchor.
_UNIFORM_TRIES = 8
# Held-out strokes: long strokes are cut into tiles of this edge (pixels), and the pixels
# within this many pixels of a held-out stroke train on nothing.
_TILE = 64
_GUARD = 4


@dataclass(frozen=True, slots=True)
class TrainingPair:
    """One image volume with its labels, as a caller hands it to training.

    ``image`` is a ``(z, y, x)`` or ``(y, x)`` array or a :class:`VolumeReader`; ``labels``
    is an array of the same shape, or a mapping from slice index to a ``(y, x)`` slice of
    class ids. ``name`` identifies the pair in errors and in the model card. ``weight``
    scales how often crops come from this pair: by default every labelled pixel of every
    pair is equally likely, so a large volume outweighs a small one; a weight evens them out.
    """

    image: np.ndarray | VolumeReader
    labels: np.ndarray | Mapping[int, np.ndarray]
    name: str = "training data"
    weight: float = 1.0


@dataclass(slots=True)
class LabelledStack:
    """Consecutive slices of one pair that hold labels, kept in memory.

    2-D training keeps one slice per stack; 3-D training keeps a whole labelled z range.
    """

    source: str  #: the pair's name
    z_start: int  #: index of the first slice in the source volume
    image: np.ndarray  #: raw pixels, ``(z, y, x)``
    labels: np.ndarray  #: uint8 class ids, ``(z, y, x)``; 255 = unlabelled
    weight: float = 1.0  #: the pair's sampling weight (per labelled pixel)
    #: turns raw pixels into the network's [0, 1] (a card's percentiles); None: by dtype
    scale: IntensityScaler | None = field(default=None, repr=False)
    #: the labels crops are cut from when a base model's classes are kept: the painted labels,
    #: and the base model's classes (coded, see engine.teacher) where nobody painted; or None
    taught: np.ndarray | None = field(default=None, repr=False)
    _labelled_index: np.ndarray | None = field(default=None, repr=False)
    _class_index: dict[int, np.ndarray] | None = field(default=None, repr=False)

    @property
    def labelled_pixels(self) -> int:
        return int(np.count_nonzero(self.labels != IGNORE_LABEL))

    def scaled(self, raw: np.ndarray) -> np.ndarray:
        """Pixels of this stack's image (a crop, a plane, a box) as the network sees them:
        float32 in [0, 1], by the stack's scaler or else by the pixel type's range."""
        return normalise(raw) if self.scale is None else self.scale(raw)

    def with_labels(self, labels: np.ndarray) -> LabelledStack:
        """The same pixels with other labels (a training or validation part of them)."""
        return LabelledStack(
            self.source, self.z_start, self.image, labels, weight=self.weight, scale=self.scale
        )

    @property
    def is_dense(self) -> bool:
        return self.labelled_pixels >= _DENSE_FRACTION * self.labels.size

    @property
    def is_fully_labelled(self) -> bool:
        return not (self.labels == IGNORE_LABEL).any()

    def labelled_index(self) -> np.ndarray:
        """Flat indices of the labelled pixels (cached: drawn from on every sparse crop)."""
        if self._labelled_index is None:
            self._labelled_index = np.flatnonzero(self.labels != IGNORE_LABEL)
        return self._labelled_index

    def class_index(self) -> dict[int, np.ndarray]:
        """Flat indices of the labelled pixels of each class present (cached)."""
        if self._class_index is None:
            index = self.labelled_index()
            ids = self.labels.ravel()[index]
            self._class_index = {int(c): index[ids == c] for c in np.unique(ids)}
        return self._class_index


def _image_shape(image: np.ndarray | VolumeReader) -> tuple[int, ...]:
    return tuple(image.shape)


def _read_image_slices(image: np.ndarray | VolumeReader, z0: int, z1: int) -> np.ndarray:
    if isinstance(image, VolumeReader):
        return image.read_block(z0, z1)
    return np.array(image[z0:z1])


def _as_label_volume(pair: TrainingPair, shape: tuple[int, int, int]) -> dict[int, np.ndarray]:
    """Labelled slices of a pair as ``{z: (y, x) uint8}``, checked against the image."""
    labels = pair.labels
    if isinstance(labels, Mapping):
        planes = dict(labels)
    else:
        labels = np.asarray(labels)
        if labels.ndim == 2:
            labels = labels[np.newaxis]
        if labels.shape != shape:
            raise InputError(
                f"labels have shape {labels.shape} but the image has {shape}",
                source=pair.name,
                where="labels",
            )
        planes = {z: labels[z] for z in range(shape[0])}
    checked = {}
    for z, plane in sorted(planes.items()):
        z = int(z)
        plane = np.asarray(plane)
        if not 0 <= z < shape[0]:
            raise InputError(
                f"labelled slice {z} outside the volume's 0..{shape[0] - 1}",
                source=pair.name,
                where=f"labels[{z}]",
            )
        if plane.shape != shape[1:]:
            raise InputError(
                f"labelled slice has shape {plane.shape}, the image's slices {shape[1:]}",
                source=pair.name,
                where=f"labels[{z}]",
            )
        if plane.dtype.kind not in "ui" or (
            plane.size and (plane.min() < 0 or plane.max() > IGNORE_LABEL)
        ):
            raise InputError(
                "labels must be integer class ids 0..254, 255 for unlabelled",
                source=pair.name,
                where=f"labels[{z}]",
            )
        if (plane != IGNORE_LABEL).any():
            checked[z] = plane.astype(np.uint8, copy=False)
    return checked


def collect_stacks(
    pairs: Sequence[TrainingPair], *, dims: int = 2, normalisation: Mapping | None = None
) -> list[LabelledStack]:
    """Read the labelled parts of every pair into memory.

    :param pairs: the training data.
    :param dims: 2 gives one stack per labelled slice; 3 gives one stack per run of
        consecutive labelled slices (a 3-D crop needs its neighbours).
    :param normalisation: a model card's scaling; a percentile scaling is measured on each
        pair's whole image (as inference measures it on the whole volume) and kept with its
        stacks, which scale their raw pixels with it (:meth:`LabelledStack.scaled`). None
        scales by the pixel type.
    :returns: the stacks, in pair and z order.
    :raises InputError: naming the pair for mismatched shapes, bad ids, or no labels at all.
    """
    stacks: list[LabelledStack] = []
    for pair in pairs:
        shape = _image_shape(pair.image)
        if len(shape) == 2:
            shape = (1, *shape)
        if len(shape) != 3:
            raise InputError(
                f"image must be 2-D or 3-D, got shape {shape}", source=pair.name, where="image"
            )
        if not (isinstance(pair.weight, (int, float)) and pair.weight > 0):
            raise InputError(
                f"sampling weight must be a positive number, not {pair.weight!r}",
                source=pair.name,
                where="weight",
            )
        planes = _as_label_volume(pair, shape)
        if not planes:
            raise InputError(
                "no labelled pixels (every label is 255)", source=pair.name, where="labels"
            )
        image = pair.image
        if not isinstance(image, VolumeReader):
            image = np.asarray(image)
            if image.ndim == 2:
                image = image[np.newaxis]
        scale = None
        if normalisation is not None and normalisation.get("method") == "percentile":
            scale = scaler_for(image, normalisation)
        for z0, z1 in _runs(sorted(planes), split=(dims == 2)):
            labels = np.stack(
                [planes.get(z, np.full(shape[1:], IGNORE_LABEL, np.uint8)) for z in range(z0, z1)]
            )
            raw = _read_image_slices(image, z0, z1)
            if raw.dtype not in (np.uint8, np.uint16, np.float32):
                raise InputError(
                    f"unsupported pixel type {raw.dtype}", source=pair.name, where="image"
                )
            stacks.append(
                LabelledStack(pair.name, z0, raw, labels, weight=pair.weight, scale=scale)
            )
    return stacks


def _runs(indices: list[int], *, split: bool) -> list[tuple[int, int]]:
    """Half-open z ranges: one per index when ``split``, else one per consecutive run."""
    if split:
        return [(z, z + 1) for z in indices]
    runs: list[tuple[int, int]] = []
    for z in indices:
        if runs and runs[-1][1] == z:
            runs[-1] = (runs[-1][0], z + 1)
        else:
            runs.append((z, z + 1))
    return runs


def _hold_out_region(
    stack: LabelledStack, fraction: float
) -> tuple[LabelledStack, LabelledStack | None]:
    """Split one stack's labelled pixels by x: the right-most ``fraction`` validates."""
    columns = np.nonzero(stack.labels != IGNORE_LABEL)[2]
    threshold = np.quantile(columns, 1.0 - fraction, method="higher")
    if threshold == columns.min():
        return stack, None  # the labels span too few columns to split
    x = np.arange(stack.labels.shape[2])
    in_validation = (x >= threshold)[np.newaxis, np.newaxis, :]
    train_labels = np.where(in_validation, IGNORE_LABEL, stack.labels).astype(np.uint8)
    validation_labels = np.where(in_validation, stack.labels, IGNORE_LABEL).astype(np.uint8)
    return stack.with_labels(train_labels), stack.with_labels(validation_labels)


def _stroke_pieces(labels: np.ndarray, class_id: int, piece_limit: int) -> list[np.ndarray]:
    """Flat indices of each painted stroke of one class; strokes above ``piece_limit`` pixels
    (a long line across the slice, a grid) are cut into square tiles of the stroke."""

    mask = labels == class_id
    structure = np.ones((3,) * labels.ndim, dtype=bool)
    if labels.shape[0] > 1:  # 2-D slices of a 3-D stack: strokes stay within their slice
        structure[0] = structure[2] = False
    components, _ = ndimage.label(mask, structure=structure)
    pieces: list[np.ndarray] = []
    # Each stroke is found within its own bounding box: a slice-wide sort of the component ids
    # cost 8 bytes a pixel of the whole slice (a gigabyte or more for a large slice).
    for component, box in enumerate(ndimage.find_objects(components), start=1):
        if box is None:
            continue
        inside = np.nonzero(components[box] == component)
        coordinates = tuple(where + edge.start for where, edge in zip(inside, box))
        indices = np.ravel_multi_index(coordinates, labels.shape)
        if indices.size <= piece_limit:
            pieces.append(indices)
            continue
        _, ys, xs = np.unravel_index(indices, labels.shape)
        tile = _TILE
        keys = (ys // tile) * (labels.shape[2] // tile + 1) + xs // tile
        for key in np.unique(keys):
            pieces.append(indices[keys == key])
    return pieces


def _hold_out_strokes(
    stacks: list[LabelledStack], fraction: float, seed: int
) -> tuple[list[LabelledStack], list[LabelledStack]]:
    """Hold out whole painted strokes (``fraction`` of each class's pixels) of sparse stacks.

    Training never sees a held-out stroke's labels nor those of the pixels within
    ``_GUARD`` pixels of it (they are nearly the same pixels), so the validation score is
    computed only on pixels the network was not trained on.
    """

    rng = np.random.default_rng(seed)
    held = [np.zeros(stack.labels.shape, dtype=bool) for stack in stacks]
    classes = sorted(
        {int(c) for stack in stacks for c in np.unique(stack.labels) if c != IGNORE_LABEL}
    )
    for class_id in classes:
        total = sum(int(np.count_nonzero(stack.labels == class_id)) for stack in stacks)
        wanted = fraction * total
        limit = max(int(wanted), 8 * _TILE)
        pieces = [
            (number, piece)
            for number, stack in enumerate(stacks)
            for piece in _stroke_pieces(stack.labels, class_id, limit)
        ]
        if len(pieces) < 2:
            continue  # one stroke of this class: it has to train
        taken = 0
        for position in rng.permutation(len(pieces)):
            if taken >= wanted:
                break
            number, piece = pieces[position]
            if taken + piece.size > 2 * wanted and taken > 0:
                continue  # a big stroke would overshoot: try a smaller one
            held[number].ravel()[piece] = True
            taken += piece.size
    train, validation = [], []
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = True  # grow within each slice
    for stack, mask in zip(stacks, held):
        if not mask.any():
            train.append(stack)
            continue
        guard = ndimage.binary_dilation(mask, structure=structure, iterations=_GUARD)
        train_labels = np.where(guard, IGNORE_LABEL, stack.labels).astype(np.uint8)
        validation_labels = np.where(mask, stack.labels, IGNORE_LABEL).astype(np.uint8)
        train.append(stack.with_labels(train_labels))
        validation.append(stack.with_labels(validation_labels))
    return train, validation


def guard_masks(validation: Sequence[LabelledStack]) -> dict[tuple[str, int], np.ndarray]:
    """Held-out pixels grown by the guard band, per ``(source, z)`` plane: what training must
    leave out so the validation figure keeps scoring pixels the network never learnt from."""
    return {
        (stack.source, stack.z_start + i): ndimage.binary_dilation(
            stack.labels[i] != IGNORE_LABEL, iterations=_GUARD
        )
        for stack in validation
        for i in range(stack.labels.shape[0])
    }


def split_validation(
    stacks: list[LabelledStack], *, fraction: float, seed: int = 0
) -> tuple[list[LabelledStack], list[LabelledStack], str]:
    """Set part of the labelled material aside to choose and report the best model.

    With at least ``1 / fraction`` stacks, ``round(n * fraction)`` whole stacks are held
    out, spread evenly over the sorted list (so over the annotated z range, wherever that is).
    With fewer, sparse annotations (painted strokes) give whole strokes: ``fraction`` of each
    class's painted pixels, in strokes chosen at random (long strokes cut into tiles), with a
    band around them that trains on nothing; fully labelled slices give the right-most
    ``fraction`` of their pixels (by x). Training and validation labels never overlap.

    :param stacks: the labelled material from :func:`collect_stacks`.
    :param fraction: share to hold out, 0 for none (then the validation list is empty).
    :param seed: chooses the held-out strokes.
    :returns: training stacks, validation stacks, and ``"slices"``, ``"strokes"``,
        ``"regions"`` or ``"none"``, the method used.
    """
    if not 0.0 <= fraction < 1.0:
        raise InputError(
            f"validation fraction must be in [0, 1), not {fraction}", where="validation_fraction"
        )
    if fraction == 0.0 or not stacks:
        return list(stacks), [], "none"
    count = len(stacks)
    if count * fraction >= 1.0:
        held = max(1, round(count * fraction))
        # Evenly spaced positions, away from the two ends: covers the annotated range.
        positions = {int(round(p)) for p in np.linspace(0, count - 1, held + 2)[1:-1]}
        train = [s for i, s in enumerate(stacks) if i not in positions]
        validation = [s for i, s in enumerate(stacks) if i in positions]
        return train, validation, "slices"
    sparse = [stack for stack in stacks if not stack.is_fully_labelled]
    if sparse:
        kept, held_out = _hold_out_strokes(sparse, fraction, seed)
        kept_by_id = {id(original): new for original, new in zip(sparse, kept)}
        dense = [s for s in stacks if s.is_fully_labelled]
        dense_train, dense_validation = _regions(dense, fraction)
        train = [kept_by_id.get(id(s), s) for s in stacks if not s.is_fully_labelled]
        validation = held_out + dense_validation
        return train + dense_train, validation, ("strokes" if validation else "none")
    train, validation = _regions(stacks, fraction)
    return train, validation, ("regions" if validation else "none")


def _regions(
    stacks: list[LabelledStack], fraction: float
) -> tuple[list[LabelledStack], list[LabelledStack]]:
    train: list[LabelledStack] = []
    validation: list[LabelledStack] = []
    for stack in stacks:
        kept, held_out = _hold_out_region(stack, fraction)
        train.append(kept)
        if held_out is not None:
            validation.append(held_out)
    return train, validation


def describe_stacks(stacks: Sequence[LabelledStack]) -> list[dict]:
    """Per source: which slices were used and how many labelled pixels (for model cards)."""
    summary: dict[str, dict] = {}
    for stack in stacks:
        entry = summary.setdefault(
            stack.source, {"source": stack.source, "slices": [], "labelled_pixels": 0}
        )
        entry["slices"].extend(range(stack.z_start, stack.z_start + stack.labels.shape[0]))
        entry["labelled_pixels"] += stack.labelled_pixels
    return list(summary.values())


class SamplePool:
    """Draws augmented training batches from labelled stacks.

    :param stacks: training material from :func:`collect_stacks` / :func:`split_validation`.
    :param crop_size: crop size per spatial axis: ``(y, x)`` for 2-D, ``(z, y, x)`` for 3-D.
    :param augment: which augmentations to apply to each crop.
    """

    def __init__(
        self, stacks: list[LabelledStack], *, crop_size: tuple[int, ...], augment: AugmentConfig
    ):
        self.stacks = [s for s in stacks if s.labelled_pixels]
        if not self.stacks:
            raise InputError(
                "no labelled pixels left for training after setting validation aside",
                where="training",
            )
        self.crop_size = tuple(int(c) for c in crop_size)
        self.augment = augment
        counts = np.array([s.labelled_pixels * s.weight for s in self.stacks], dtype=np.float64)
        # Stacks are drawn by their share of labels, so every labelled pixel is equally likely
        # (times its pair's weight).
        self._weights = counts / counts.sum()
        # Strokes alone: crops are centred on each painted class equally often, however much
        # of one class a person painted (ten background corrections must not drown the
        # objects). Per class, a stack is drawn by its share of that class's pixels.
        self._by_class: dict[int, np.ndarray] = {}
        if not any(stack.is_dense for stack in self.stacks):
            classes = sorted({c for stack in self.stacks for c in stack.class_index()})
            for class_id in classes:
                share = np.array(
                    [
                        s.class_index().get(class_id, np.empty(0)).size * s.weight
                        for s in self.stacks
                    ],
                    dtype=np.float64,
                )
                self._by_class[class_id] = share / share.sum()

    @property
    def labelled_pixels(self) -> int:
        return int(sum(s.labelled_pixels for s in self.stacks))

    def _crop_size_3d(self) -> tuple[int, int, int]:
        size = self.crop_size if len(self.crop_size) == 3 else (1, *self.crop_size)
        return (size[0], size[1], size[2])

    def _corner_around_anchor(
        self,
        stack: LabelledStack,
        rng: np.random.Generator,
        size: tuple[int, int, int],
        index: np.ndarray | None = None,
    ) -> tuple[int, ...]:
        index = stack.labelled_index() if index is None else index
        anchor = np.unravel_index(index[rng.integers(0, index.size)], stack.labels.shape)
        corner = []
        for position, length, extent in zip(anchor, size, stack.labels.shape):
            start = int(position) - int(rng.integers(0, length))
            if extent >= length:  # keep the crop inside when it fits: less padding
                start = min(max(start, 0), extent - length)
            corner.append(start)
        return tuple(corner)

    def draw_crop(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One augmented crop holding at least one labelled pixel.

        :returns: image ``float32`` and labels ``uint8`` of the crop size (2-D crops drop
            the z axis).
        """
        size = self._crop_size_3d()
        if self._by_class:
            classes = list(self._by_class)
            class_id = classes[int(rng.integers(0, len(classes)))]
            stack = self.stacks[int(rng.choice(len(self.stacks), p=self._by_class[class_id]))]
            anchored = self._corner_around_anchor(stack, rng, size, stack.class_index()[class_id])
            return self._crop(stack, anchored, size, rng)
        stack = self.stacks[int(rng.choice(len(self.stacks), p=self._weights))]
        corner = None
        if stack.is_dense:
            for _ in range(_UNIFORM_TRIES):
                candidate = tuple(
                    int(rng.integers(0, max(e - n, 0) + 1))
                    for e, n in zip(stack.labels.shape, size)
                )
                window = tuple(slice(max(c, 0), c + n) for c, n in zip(candidate, size))
                if (stack.labels[window] != IGNORE_LABEL).any():
                    corner = candidate
                    break
        if corner is None:
            corner = self._corner_around_anchor(stack, rng, size)
        return self._crop(stack, corner, size, rng)

    def _crop(
        self,
        stack: LabelledStack,
        corner: tuple[int, ...],
        size: tuple[int, int, int],
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        labelled = stack.labels if stack.taught is None else stack.taught
        raw, labels = crop_at(stack.image, labelled, corner, size)
        image = stack.scaled(raw)
        if len(self.crop_size) == 2:
            image, labels = image[0], labels[0]
        return augment_pair(image, labels, rng, self.augment)

    def draw_batch(
        self, rng: np.random.Generator, batch_size: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """A batch for the network.

        :returns: images ``(batch, 1, *crop_size)`` float32 and labels ``(batch, *crop_size)``
            int64 (the dtype cross-entropy wants).
        """
        crops = [self.draw_crop(rng) for _ in range(batch_size)]
        images = np.stack([image for image, _ in crops])[:, np.newaxis]
        labels = np.stack([labels for _, labels in crops]).astype(np.int64)
        return images, labels
