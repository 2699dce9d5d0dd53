"""A fine-tune's preparation of large slices keeps to a few bytes a pixel, with the same result.

A percentile-scaled slice used to be kept as float32 (4 bytes a pixel, 64 MB for 4096²) for the
whole run; it is now kept as read and scaled crop by crop, giving the very same crops.

The base model's classes under the strokes (``keep_base``) used to be worked out from the
plane's logits and its probabilities per class, each held whole: a 4096² slice cost some 17
bytes a pixel at its peak (280 MB) beside the slices themselves, in the process that also
serves the web UI. It is now predicted a tile at a time and each tile is reduced at once to a
byte a pixel. These tests check that the coded labels are exactly what the whole-plane way
gave (written out here), that a 4096² plane now costs under 10 bytes a pixel at its peak (a
fresh interpreter, so nothing another test allocated hides the growth), and that the memory
such work frees goes back to the system rather than staying with the allocator.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from biosegment.engine.augment import AugmentConfig
from biosegment.engine.intensity import percentile_normalisation, scaler_for
from biosegment.engine.losses import TEACHER_OFFSET
from biosegment.engine.metrics import IGNORE_LABEL
from biosegment.engine.samples import LabelledStack, SamplePool, TrainingPair, collect_stacks
from biosegment.engine.teacher import CONFIDENCE, CORRECTION_RADIUS, teach_stacks
from biosegment.engine.unet import UNet
from biosegment.engine.validation import predict_logits
from biosegment.volumes.base import normalise

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _whole_plane_teacher(model: UNet, image: np.ndarray, painted: np.ndarray) -> np.ndarray:
    """The taught labels as they were worked out before: the whole plane's logits and
    probabilities, the whole plane dilated around contradicting strokes."""
    with torch.no_grad():
        logits = predict_logits(model.eval(), normalise(image), device=torch.device("cpu"))
    probabilities = torch.softmax(logits, dim=0).mul_(255.0).add_(0.5).to(torch.uint8).numpy()
    chosen = probabilities.argmax(axis=0).astype(np.uint8)
    confident = probabilities.max(axis=0) / 255.0 >= CONFIDENCE
    contradicted = (painted != IGNORE_LABEL) & (painted != chosen)
    if contradicted.any():
        confident &= ~ndimage.binary_dilation(contradicted, iterations=CORRECTION_RADIUS)
    teacher = np.where(confident, chosen + np.uint8(TEACHER_OFFSET), np.uint8(IGNORE_LABEL))
    return np.where(painted != IGNORE_LABEL, painted, teacher)


def _strokes(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Lines of both classes, some at the plane's edges (where the dilation meets the border)."""
    painted = np.full(shape, IGNORE_LABEL, np.uint8)
    for _ in range(12):
        y = int(rng.integers(0, shape[0] - 3))
        x0 = int(rng.integers(0, shape[1] - 40))
        painted[y : y + 3, x0 : x0 + int(rng.integers(10, 300))] = rng.integers(0, 2)
    painted[:2, :50] = 1
    painted[-3:, -80:] = 0
    return painted


@pytest.mark.parametrize("shape", [(700, 1100), (300, 420)])
def test_tiled_teaching_gives_exactly_what_the_whole_plane_gave(shape):
    rng = np.random.default_rng(7)
    torch.manual_seed(3)
    model = UNet(feature_maps=4, levels=2, num_classes=2, norm="instance")
    images = (rng.random((2, *shape)) * 255).astype(np.uint8)
    labels = np.stack([_strokes(shape, rng) for _ in range(2)])
    stack = LabelledStack("random", 0, images, labels)
    known = teach_stacks([stack], model, device=torch.device("cpu"))
    assert stack.taught is not None
    for index in range(2):
        expected = _whole_plane_teacher(model, images[index], labels[index])
        np.testing.assert_array_equal(stack.taught[index], expected)
    # strokes that join later reuse what was predicted: the same labels again
    again = LabelledStack("random", 0, images, labels.copy())
    teach_stacks([again], model, device=torch.device("cpu"), known=known)
    np.testing.assert_array_equal(again.taught, stack.taught)
    codes = set(np.unique(stack.taught))
    assert codes >= {0, 1, IGNORE_LABEL} and codes & {TEACHER_OFFSET, TEACHER_OFFSET + 1}


_PEAK_OF_A_LARGE_PLANE = """
import resource
import numpy as np, torch
from biosegment.engine.samples import LabelledStack
from biosegment.engine.teacher import teach_stacks
from biosegment.engine.unet import UNet

torch.set_num_threads(1)
edge = 4096
rng = np.random.default_rng(0)
image = rng.random((1, edge, edge), dtype=np.float32)  # a percentile-scaled slice
labels = np.full((1, edge, edge), 255, np.uint8)
for k in range(8):  # the red-team probe's strokes: long lines of both classes
    labels[0, 400 + 400 * k : 408 + 400 * k, 300:3800] = k % 2
torch.manual_seed(0)
model = UNet(feature_maps=4, levels=2, num_classes=2)
small = LabelledStack("warm", 0, image[:, :600, :600].copy(), labels[:, :600, :600].copy())
teach_stacks([small], model, device=torch.device("cpu"))  # torch's own first-use costs
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
teach_stacks([LabelledStack("large", 0, image, labels)], model, device=torch.device("cpu"))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) * 1024 / edge / edge)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in kB is Linux's")
def test_teaching_a_4096_plane_costs_under_10_bytes_a_pixel_at_its_peak():
    result = subprocess.run(
        [sys.executable, "-c", _PEAK_OF_A_LARGE_PLANE],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    bytes_per_pixel = float(result.stdout.strip().splitlines()[-1])
    # the coded labels and the kept opinion are a byte a pixel each; the rest is a tile's
    # arrays and the band around the corrections (was about 17 bytes a pixel)
    assert bytes_per_pixel < 10.0, f"{bytes_per_pixel:.1f} bytes a pixel"


def test_prepared_slices_keep_their_raw_bytes_and_crops_are_scaled_as_before():
    rng = np.random.default_rng(5)
    image = rng.integers(20, 230, (1, 4096, 4096), dtype=np.uint8)
    labels = np.full(image.shape, IGNORE_LABEL, np.uint8)
    labels[0, 1000:1008, 300:3800] = 1
    labels[0, 2000:2008, 300:3800] = 0
    card = percentile_normalisation()
    (stack,) = collect_stacks([TrainingPair(image, labels, name="large")], normalisation=card)
    # a byte a pixel, as read: scaled floats would be 4 (64 MB for this one slice)
    assert stack.image.nbytes == 4096 * 4096
    # what training sees is what the slice scaled whole gave, crop by crop
    scaled_whole = LabelledStack("large", 0, scaler_for(image, card)(image), labels)
    augment = AugmentConfig()
    kept, before = (
        SamplePool([s], crop_size=(96, 96), augment=augment) for s in (stack, scaled_whole)
    )
    for seed in range(3):
        now, then = (
            kept.draw_batch(np.random.default_rng(seed), 4),
            before.draw_batch(np.random.default_rng(seed), 4),
        )
        np.testing.assert_array_equal(now[0], then[0])
        np.testing.assert_array_equal(now[1], then[1])


_FREED_AND_HELD = """
import numpy as np
from biosegment.engine.freed_memory import release_freed_memory

def resident_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) // 1024 for line in status if line.startswith("VmRSS"))

big = np.ones(8 * 2**20, np.uint8)
del big  # glibc now keeps freed blocks up to this size in its heap
arrays = [np.ones(4 * 2**20, np.uint8) for _ in range(40)]
pin = np.ones(2**20, np.uint8)  # allocated after them: the heap cannot shrink from its top
del arrays
held = resident_mb()
released = release_freed_memory()
print(held, resident_mb(), released)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the arenas described are glibc's")
def test_memory_freed_by_large_array_work_goes_back_to_the_system():
    result = subprocess.run(
        [sys.executable, "-c", _FREED_AND_HELD],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    held, after, released = result.stdout.split()
    assert released == "True"
    assert int(held) - int(after) > 100, f"{held} MB held, {after} MB after the release"
