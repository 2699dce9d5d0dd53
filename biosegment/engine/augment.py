"""Random changes to training crops, so a network sees more variety than its few labels hold.

Every function takes an image (float32, scaled to [0, 1]) and, where geometry changes, its
labels (class ids, 255 = unlabelled) of the same shape, and returns new arrays. The last two
axes are the slice plane (y, x); a leading z axis, when there is one, is a 3-D crop and gets the
same in-plane change on every slice, because EM sections are thin in x and y but thick in z.
All randomness comes from the ``numpy.random.Generator`` passed in, so a seeded generator
gives the same crops in every run. Labels are only ever moved, never interpolated: the
unlabelled marker and every class id survive each change.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

__all__ = [
    "AugmentConfig",
    "crop_at",
    "random_crop",
    "flip_and_rotate",
    "adjust_intensity",
    "elastic_deform",
    "rescale",
    "invert",
    "add_noise",
    "blur",
    "section_artefacts",
    "augment_pair",
]

#: Label value written where padding adds pixels that nobody labelled.
_UNLABELLED = 255


@dataclass(frozen=True, slots=True)
class AugmentConfig:
    """Which augmentations run and how strong they are. ``AugmentConfig.none()`` turns all off."""

    flip: bool = True  #: mirror along y, x (and z for 3-D crops), each 50 %
    rot90: bool = True  #: rotate the slice plane by 0/90/180/270 degrees
    intensity_probability: float = 0.5  #: chance of a brightness/contrast/gamma change
    brightness: float = 0.1  #: shift drawn from [-brightness, brightness]
    contrast: float = 0.15  #: factor drawn from [1 - contrast, 1 + contrast]
    gamma: float = 0.2  #: exponent drawn log-uniformly from [1/(1+g), 1+g]
    elastic_probability: float = 0.0  #: chance of an elastic deformation (costs CPU time)
    elastic_displacement: float = 4.0  #: standard deviation of control-point shifts, pixels
    elastic_control_points: int = 4  #: control points per in-plane axis
    # Differences between microscopes; all off by default, so fine-tunes train as before.
    scale_probability: float = 0.0  #: chance of an in-plane zoom (another pixel size)
    scale_range: tuple[float, float] = (0.75, 1.33)  #: zoom factor, drawn log-uniformly
    invert_probability: float = 0.0  #: chance of inverted contrast (membranes bright)
    noise_probability: float = 0.0  #: chance of added Gaussian noise
    noise_sigma: float = 0.08  #: its standard deviation, drawn from [0, noise_sigma]
    blur_probability: float = 0.0  #: chance of a Gaussian blur (focus, thicker sections)
    blur_sigma: float = 1.5  #: its sigma in pixels, drawn from [0.3, blur_sigma]
    artefact_probability: float = 0.0  #: chance of stripes, uneven illumination or a dark fold

    @classmethod
    def none(cls) -> AugmentConfig:
        return cls(flip=False, rot90=False, intensity_probability=0.0, elastic_probability=0.0)

    def as_dict(self) -> dict:
        """The settings as plain data, as model cards record them.

        :returns: a JSON-ready dict with one entry per field.
        """
        data = asdict(self)
        data["scale_range"] = list(self.scale_range)
        return data


def crop_at(
    image: np.ndarray, labels: np.ndarray, corner: tuple[int, ...], size: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``size`` pixels from ``corner`` on; parts outside the array are padded.

    The image is padded by mirroring (the network sees plausible texture) and the labels with
    255, so padding never teaches the network anything.

    :param image: ``(..., y, x)`` array.
    :param labels: class ids, same shape as ``image``.
    :param corner: start index per axis; may be negative or run past the end.
    :param size: crop size per axis.
    :returns: image and labels crops of shape ``size`` (copies, never views).
    """
    if image.shape != labels.shape:
        raise ValueError(f"image {image.shape} and labels {labels.shape} differ in shape")
    inside: list[slice] = []
    padding: list[tuple[int, int]] = []
    for start, length, extent in zip(corner, size, image.shape):
        first, last = max(start, 0), min(start + length, extent)
        inside.append(slice(first, max(last, first)))
        padding.append((first - start, start + length - max(last, first)))
    image_part = image[tuple(inside)]
    label_part = labels[tuple(inside)]
    if not any(before or after for before, after in padding):
        return image_part.copy(), label_part.copy()
    # Mirroring needs at least one pixel; fully outside crops (never asked for) get zeros.
    mode: Literal["symmetric", "constant"] = "symmetric" if image_part.size else "constant"
    image_crop = np.pad(image_part, padding, mode=mode)
    label_crop = np.pad(label_part, padding, mode="constant", constant_values=_UNLABELLED)
    return image_crop, label_crop


def random_crop(
    image: np.ndarray, labels: np.ndarray, size: tuple[int, ...], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A crop at a uniformly random position; axes shorter than ``size`` are padded.

    :param image: ``(..., y, x)`` array.
    :param labels: class ids, same shape.
    :param size: crop size per axis.
    :param rng: the random source.
    :returns: image and label crops of shape ``size``.
    """
    corner = tuple(
        int(rng.integers(0, max(extent - length, 0) + 1))
        for extent, length in zip(image.shape, size)
    )
    return crop_at(image, labels, corner, size)


def flip_and_rotate(
    image: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    *,
    flip: bool = True,
    rot90: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Mirror and rotate image and labels together (the eight symmetries of a square).

    Rotations by 90 or 270 degrees are only drawn for square slices, so crop shapes never
    change and a batch stays stackable.

    :returns: contiguous copies of the changed image and labels.
    """
    if flip:
        for axis in range(image.ndim):
            if rng.random() < 0.5:
                image, labels = np.flip(image, axis), np.flip(labels, axis)
    if rot90:
        square = image.shape[-1] == image.shape[-2]
        turns = int(rng.integers(0, 4)) if square else 2 * int(rng.integers(0, 2))
        image = np.rot90(image, turns, axes=(-2, -1))
        labels = np.rot90(labels, turns, axes=(-2, -1))
    return np.ascontiguousarray(image), np.ascontiguousarray(labels)


def adjust_intensity(
    image: np.ndarray,
    rng: np.random.Generator,
    *,
    brightness: float = 0.1,
    contrast: float = 0.15,
    gamma: float = 0.2,
) -> np.ndarray:
    """Change brightness, contrast and gamma, as differently prepared EM stacks do.

    Contrast scales around the crop's mean, brightness shifts, the result is clipped to
    [0, 1] and then raised to a random gamma.

    :param image: float32 array scaled to [0, 1].
    :returns: a new float32 array in [0, 1].
    """
    contrast_factor = rng.uniform(1.0 - contrast, 1.0 + contrast)
    shift = rng.uniform(-brightness, brightness)
    exponent = float(np.exp(rng.uniform(-np.log1p(gamma), np.log1p(gamma))))
    mean = float(image.mean())
    changed = (image - mean) * contrast_factor + mean + shift
    np.clip(changed, 0.0, 1.0, out=changed)
    return np.power(changed, exponent, dtype=np.float32)


def _displacement_field(
    shape: tuple[int, int], rng: np.random.Generator, *, displacement: float, control_points: int
) -> np.ndarray:
    """A smooth random in-plane shift per pixel, shape ``(2, y, x)``.

    Shifts are drawn on a coarse grid and interpolated with cubic splines: far cheaper than
    smoothing per-pixel noise, and just as smooth.
    """
    coarse = rng.normal(0.0, displacement, size=(2, control_points, control_points))
    factors = (shape[0] / control_points, shape[1] / control_points)
    field = np.empty((2, *shape), dtype=np.float32)
    for axis in range(2):
        zoomed = ndimage.zoom(coarse[axis], factors, order=3, mode="nearest", grid_mode=True)
        field[axis] = zoomed[: shape[0], : shape[1]]
    return field


def elastic_deform(
    image: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    *,
    displacement: float = 4.0,
    control_points: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """Warp image and labels by one smooth random field (the same for every z slice).

    The image is resampled linearly, the labels by nearest neighbour so no new class id (and
    no value between a class and 255) can appear. Borders are mirrored.

    :param displacement: standard deviation of the shifts at the control points, in pixels.
    :param control_points: control points per in-plane axis (more = wavier).
    :returns: the warped image (float32) and labels (same dtype as given).
    """
    if image.shape != labels.shape:
        raise ValueError(f"image {image.shape} and labels {labels.shape} differ in shape")
    plane = image.shape[-2:]
    field = _displacement_field(
        plane, rng, displacement=displacement, control_points=control_points
    )
    rows, columns = _pixel_grid(plane)
    return _warp(image, labels, np.stack([rows + field[0], columns + field[1]]))


def _pixel_grid(plane: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(
        np.arange(plane[0], dtype=np.float32), np.arange(plane[1], dtype=np.float32), indexing="ij"
    )


def _warp(
    image: np.ndarray, labels: np.ndarray, coordinates: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Resample every slice at ``coordinates`` ``(2, y, x)``: image linearly, labels nearest."""
    plane = image.shape[-2:]
    image_planes = image.reshape(-1, *plane)
    label_planes = labels.reshape(-1, *plane)
    warped_image = np.empty(image_planes.shape, dtype=np.float32)
    warped_labels = np.empty(label_planes.shape, dtype=labels.dtype)
    for index in range(image_planes.shape[0]):
        ndimage.map_coordinates(
            image_planes[index], coordinates, output=warped_image[index], order=1, mode="mirror"
        )
        ndimage.map_coordinates(
            label_planes[index], coordinates, output=warped_labels[index], order=0, mode="mirror"
        )
    return warped_image.reshape(image.shape), warped_labels.reshape(labels.shape)


def rescale(image: np.ndarray, labels: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Zoom the slice plane by ``factor`` about its centre, keeping the crop's shape.

    A factor above 1 magnifies (as if the pixels were smaller), below 1 shrinks; the border
    a shrink uncovers is mirrored. Labels are moved by nearest neighbour, never blended.

    :param factor: the zoom, > 0.
    :returns: the zoomed image (float32) and labels (same dtype as given).
    """
    if image.shape != labels.shape:
        raise ValueError(f"image {image.shape} and labels {labels.shape} differ in shape")
    if not factor > 0:
        raise ValueError(f"zoom factor must be positive, not {factor}")
    plane = image.shape[-2:]
    rows, columns = _pixel_grid(plane)
    centre = [(length - 1) / 2.0 for length in plane]
    coordinates = np.stack(
        [centre[0] + (rows - centre[0]) / factor, centre[1] + (columns - centre[1]) / factor]
    )
    return _warp(image, labels, coordinates)


def invert(image: np.ndarray) -> np.ndarray:
    """Dark becomes bright: stains and detectors differ in which way membranes go."""
    return (1.0 - image).astype(np.float32)


def add_noise(image: np.ndarray, rng: np.random.Generator, *, sigma: float) -> np.ndarray:
    """Add Gaussian noise of a standard deviation drawn from [0, ``sigma``], clipped to [0, 1]."""
    strength = rng.uniform(0.0, sigma)
    noisy = image + rng.normal(0.0, strength, size=image.shape).astype(np.float32)
    return np.clip(noisy, 0.0, 1.0).astype(np.float32)


def blur(image: np.ndarray, rng: np.random.Generator, *, sigma: float) -> np.ndarray:
    """Blur each slice with a Gaussian of sigma drawn from [0.3, ``sigma``] pixels."""
    chosen = rng.uniform(0.3, max(sigma, 0.3))
    sigmas = (0.0,) * (image.ndim - 2) + (chosen, chosen)
    return ndimage.gaussian_filter(image, sigmas, mode="mirror").astype(np.float32)


def section_artefacts(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One artefact of how EM stacks are cut and imaged, chosen at random:

    - stripes: every row (or column) gets its own brightness offset, as FIB-SEM curtaining
      does, and as resliced (XZ, YZ) planes show where consecutive sections differ;
    - uneven illumination: a smooth brightness ramp across the slice;
    - a fold or scratch: a dark band a few pixels wide across the slice.

    :returns: a new float32 image in [0, 1].
    """
    plane = image.shape[-2:]
    kind = int(rng.integers(0, 3))
    if kind == 0:
        axis = int(rng.integers(0, 2))
        offsets = rng.normal(0.0, rng.uniform(0.02, 0.08), size=int(plane[axis])).astype(np.float32)
        shape = (plane[0], 1) if axis == 0 else (1, plane[1])
        changed = image + offsets.reshape(shape)
    elif kind == 1:
        rows, columns = _pixel_grid(plane)
        angle = rng.uniform(0.0, 2.0 * np.pi)
        ramp = np.cos(angle) * rows / plane[0] + np.sin(angle) * columns / plane[1]
        changed = image + rng.uniform(0.1, 0.3) * (ramp - ramp.mean())
    else:
        rows, columns = _pixel_grid(plane)
        angle = rng.uniform(0.0, np.pi)
        distance = np.cos(angle) * (rows - rng.uniform(0, plane[0])) + np.sin(angle) * (
            columns - rng.uniform(0, plane[1])
        )
        band = np.abs(distance) < rng.uniform(1.0, 4.0)
        changed = np.where(band, image * rng.uniform(0.2, 0.6), image)
    return np.clip(changed, 0.0, 1.0).astype(np.float32)


def augment_pair(
    image: np.ndarray, labels: np.ndarray, rng: np.random.Generator, config: AugmentConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Apply the augmentations ``config`` switches on, in a fixed order.

    Geometry first (elastic, zoom, then flips and rotations), then blur, intensity,
    artefacts, noise and inversion, so each intensity change sees the final pixels. The
    order of random draws is fixed, so a seeded generator reproduces the same result, and a
    switched-off augmentation draws nothing, so configurations without the newer ones give
    the same crops as before those existed.

    :param image: float32 crop in [0, 1], ``(..., y, x)``.
    :param labels: class ids, same shape.
    :param rng: the random source.
    :param config: which augmentations to apply, and how strongly.
    :returns: the augmented image (float32) and labels.
    """
    if config.elastic_probability > 0 and rng.random() < config.elastic_probability:
        image, labels = elastic_deform(
            image,
            labels,
            rng,
            displacement=config.elastic_displacement,
            control_points=config.elastic_control_points,
        )
    if config.scale_probability > 0 and rng.random() < config.scale_probability:
        low, high = config.scale_range
        image, labels = rescale(
            image, labels, float(np.exp(rng.uniform(np.log(low), np.log(high))))
        )
    if config.flip or config.rot90:
        image, labels = flip_and_rotate(image, labels, rng, flip=config.flip, rot90=config.rot90)
    if config.blur_probability > 0 and rng.random() < config.blur_probability:
        image = blur(image, rng, sigma=config.blur_sigma)
    if config.intensity_probability > 0 and rng.random() < config.intensity_probability:
        image = adjust_intensity(
            image, rng, brightness=config.brightness, contrast=config.contrast, gamma=config.gamma
        )
    if config.artefact_probability > 0 and rng.random() < config.artefact_probability:
        image = section_artefacts(image, rng)
    if config.noise_probability > 0 and rng.random() < config.noise_probability:
        image = add_noise(image, rng, sigma=config.noise_sigma)
    if config.invert_probability > 0 and rng.random() < config.invert_probability:
        image = invert(image)
    return image.astype(np.float32, copy=False), labels
