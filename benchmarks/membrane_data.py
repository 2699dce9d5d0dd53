"""Training and held-out data of the general membrane model: ISBI 2012 and NeuroProof FIB-SEM.

Shared by ``train_general_model.py`` (which trains on the training parts only) and
``bench_models.py`` (which scores on the held-out parts only):

- ISBI 2012 (ssTEM, 4 x 4 x 50 nm): slices 0-24 train, 25-29 are held out.
- NeuroProof training_sample2 (FIB-SEM, 10 nm isotropic, CC BY, HHMI Janelia FlyEM):
  z 0-199 train, in all three plane orientations (XY, XZ, YZ: the voxels are isotropic, so
  every orientation looks like a section); z 200-249 are held out, in every orientation
  (an XZ or YZ training plane is cut at z 199).

NeuroProof's membranes are derived from its neuron ids (``bodies.tif``): a pixel is membrane
where an in-plane 4-neighbour belongs to another body, or where no body covers it. Many
bodies are tiny fragments (the median body has 24 voxels in this crop), and the boundary of
a fragment lying inside a neuron is often not a membrane at all. The training targets
therefore mark bodies smaller than ``TINY_BODY_VOXELS`` voxels, and the one-pixel ring
around them, as unlabelled (255): the network is taught neither that a membrane is there
nor that none is. Scoring on the held-out part uses the published ``membranes.tif`` as it
is, so the figures stay comparable with any other model's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from biosegment.engine.metrics import IGNORE_LABEL
from biosegment.engine.samples import TrainingPair
from biosegment.volumes import open_volume

__all__ = [
    "NEUROPROOF_TRAIN_Z",
    "NEUROPROOF_TEST_Z",
    "TINY_BODY_VOXELS",
    "default_neuroproof_folder",
    "plane_membranes",
    "fragment_ids",
    "neuroproof_targets",
    "neuroproof_training_pairs",
    "neuroproof_test_part",
    "NEUROPROOF_SOURCE",
    "ISBI_SOURCE",
]

NEUROPROOF_TRAIN_Z = range(0, 200)
NEUROPROOF_TEST_Z = range(200, 250)
#: Bodies with fewer voxels than this (in the 250^3 crop) count as fragments (see above).
TINY_BODY_VOXELS = 1000

ISBI_SOURCE = {
    "dataset": "ISBI 2012 EM segmentation challenge (ssTEM, Drosophila first instar larva "
    "ventral nerve cord, about 4 x 4 x 50 nm per voxel)",
    "training_part": "train-volume.tif / train-labels.tif slices 0-24",
    "held_out_part": "train-volume.tif / train-labels.tif slices 25-29",
    "label_conversion": "ISBI label 0 (membrane) -> class 1, 255 (cell interior) -> class 0",
    "url": "http://brainiac2.mit.edu/isbi_challenge/",
    "licence": "published by the ISBI 2012 challenge for research use; cite the papers below",
    "citation": [
        "Arganda-Carreras I. et al. (2015). Crowdsourcing the creation of image segmentation "
        "algorithms for connectomics. Frontiers in Neuroanatomy 9:142.",
        "Cardona A. et al. (2010). An integrated micro- and macroarchitectural analysis of the "
        "Drosophila brain by computer-assisted serial section electron microscopy. PLoS "
        "Biology 8(10):e1000502.",
    ],
}

NEUROPROOF_SOURCE = {
    "dataset": "NeuroProof training_sample2 (FIB-SEM, Drosophila medulla, about 10 nm "
    "isotropic voxels, 250^3 crop)",
    "training_part": "z 0-199, XY, XZ and YZ planes",
    "held_out_part": "z 200-249",
    "label_conversion": "membrane = a pixel whose in-plane 4-neighbour belongs to another "
    "body, or that no body covers; bodies under 1000 voxels and the ring "
    "around them are unlabelled in training (fragment boundaries are "
    "often not membranes)",
    "url": "https://github.com/janelia-flyem/neuroproof_examples "
    "(commit ce839e17deaf4c01153827c6d028dfecfbb4b958, training_sample2)",
    "licence": "Creative Commons Attribution (CC BY), see the repository's LICENSE.txt",
    "attribution": "HHMI Janelia FlyEM, neuroproof_examples",
    "citation": [
        "Nunez-Iglesias J. et al. (2013). Machine learning of hierarchical clustering to "
        "segment 2D and 3D images. PLoS ONE 8(8):e71715.",
        "Plaza S. M. et al. (2012). Focused proofreading to reconstruct neural connectomes "
        "from EM images at scale.",
    ],
}


def default_neuroproof_folder() -> Path:
    """``shared/data/neuroproof_fib`` beside the repository."""
    return Path(__file__).resolve().parents[1].parent / "shared" / "data" / "neuroproof_fib"


def plane_membranes(bodies: np.ndarray) -> np.ndarray:
    """Membranes of every plane ``bodies[i]`` (planes = last two axes), as 0/1 uint8.

    A pixel is membrane when a 4-neighbour in its plane holds another body id, or when its
    own id is 0 (no body); pixels past the border count as the same body.
    """
    membrane = bodies == 0
    for axis in (-2, -1):
        differs = np.diff(bodies, axis=axis) != 0
        before = [slice(None)] * bodies.ndim
        after = [slice(None)] * bodies.ndim
        before[axis] = slice(None, -1)
        after[axis] = slice(1, None)
        membrane[tuple(before)] |= differs
        membrane[tuple(after)] |= differs
    return membrane.astype(np.uint8)


def fragment_ids(bodies: np.ndarray, *, tiny: int = TINY_BODY_VOXELS) -> np.ndarray:
    """Ids of the bodies with fewer than ``tiny`` voxels in ``bodies`` (0 is no body)."""
    ids, counts = np.unique(bodies, return_counts=True)
    return ids[(counts < tiny) & (ids != 0)]


def neuroproof_targets(planes: np.ndarray, fragments: np.ndarray) -> np.ndarray:
    """Training targets of every plane ``planes[i]``: 0 inside, 1 membrane, 255 unlabelled.

    :param planes: body ids, ``(n, y, x)``, in any orientation of the volume.
    :param fragments: ids of the fragment bodies (see :func:`fragment_ids`): they and the
        in-plane ring around them become unlabelled.
    """
    targets = plane_membranes(planes)
    cross = np.zeros((3, 3, 3), dtype=bool)
    cross[1, 1, :] = cross[1, :, 1] = True
    ring = ndimage.binary_dilation(np.isin(planes, fragments), structure=cross)
    targets[ring] = IGNORE_LABEL
    return targets


def _read(path: Path) -> np.ndarray:
    if path.name == "bodies.tif":
        # uint32 ids: not an image type BioSegment opens, so read with tifffile directly.
        import tifffile

        return tifffile.imread(path)
    with open_volume(path) as volume:
        return volume.read_block(0, volume.shape[0])


def neuroproof_training_pairs(
    folder: Path, *, weights: tuple[float, float, float]
) -> list[TrainingPair]:
    """XY, XZ and YZ planes of z 0-199 with their targets (fragments unlabelled).

    :param weights: sampling weight per labelled pixel of the XY, XZ and YZ pairs.
    """
    z = NEUROPROOF_TRAIN_Z
    image = _read(folder / "image.tif")[z.start : z.stop]
    bodies = _read(folder / "bodies.tif")[z.start : z.stop]
    # Fragments are judged by their size in the whole crop, not in the training part.
    fragments = fragment_ids(_read(folder / "bodies.tif"))
    pairs = []
    for name, order, weight in (
        ("XY", (0, 1, 2), weights[0]),
        ("XZ", (1, 0, 2), weights[1]),
        ("YZ", (2, 0, 1), weights[2]),
    ):
        planes = np.ascontiguousarray(bodies.transpose(order))
        targets = neuroproof_targets(planes, fragments)
        pairs.append(
            TrainingPair(
                np.ascontiguousarray(image.transpose(order)),
                targets,
                name=f"NeuroProof training_sample2 z0-199 {name} planes",
                weight=weight,
            )
        )
    return pairs


def neuroproof_test_part(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Held-out z 200-249: the image and ``membranes.tif`` as class ids (1 = membrane)."""
    z = NEUROPROOF_TEST_Z
    image = _read(folder / "image.tif")[z.start : z.stop]
    membranes = _read(folder / "membranes.tif")[z.start : z.stop]
    return np.ascontiguousarray(image), (membranes > 0).astype(np.uint8)
