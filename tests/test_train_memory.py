"""The memory estimate of a training step, against real steps, and what it offers when too much.

The calibration runs a real forward and backward pass (the U-Net, the training loss, AdamW)
in a fresh interpreter and compares its peak RSS with the estimate, with a generous tolerance:
the estimate must neither miss most of a step nor refuse settings that need half as much.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from biosegment.engine.device_memory import DeviceMemory, device_memory, ram_available
from biosegment.engine.train_memory import (
    WORKING_BYTES,
    parameter_count,
    require_training_fits,
    training_memory,
    training_network,
)
from biosegment.engine.train_settings import TrainingSettings, crop_shape_for
from biosegment.engine.unet import UNet
from biosegment.errors import InputError
from job_fixtures import REPO, biosegment_env

# One training step in a fresh interpreter: the RSS before the network is made, and the peak
# after a forward, a backward and an optimizer step (the kernels are warmed up first, so their
# one-time buffers are not counted). The peak is the process's VmHWM: getrusage's ru_maxrss
# survives exec on Linux, so a child of a large test process would report the parent's peak.
_STEP = """
import json, sys
import numpy as np
import torch
from biosegment.engine.losses import SegmentationLoss
from biosegment.engine.unet import UNet

def status(key):
    with open("/proc/self/status") as lines:
        line = next(line for line in lines if line.startswith(key))
    return int(line.split()[1]) * 1024

dims, crop, batch, fm, levels, norm, precision = json.loads(sys.argv[1])
torch.set_num_threads(1)
warm = UNet(dims=dims, feature_maps=2, levels=1, norm=norm)
warm(torch.rand((1, 1) + (16,) * dims)).sum().backward()
del warm
before = status("VmRSS:")
model = UNet(dims=dims, feature_maps=fm, levels=levels, num_classes=2, norm=norm)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
images = torch.from_numpy(np.random.rand(batch, 1, *(crop,) * dims).astype(np.float32))
labels = torch.from_numpy(np.random.randint(0, 2, (batch,) + (crop,) * dims).astype(np.int64))
with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
    logits = model(images)
SegmentationLoss(num_classes=2)(logits, labels).backward()
optimizer.step()
print(status("VmHWM:") - before)
"""


def measured_step(dims, crop, batch, fm, levels, norm, precision) -> int:
    arguments = json.dumps([dims, crop, batch, fm, levels, norm, precision])
    result = subprocess.run(
        [sys.executable, "-c", _STEP, arguments],
        cwd=REPO,
        env=biosegment_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
@pytest.mark.parametrize(
    "dims, crop, batch, fm, levels, norm, precision",
    [
        (2, 128, 16, 8, 4, "instance", "fp32"),  # the default settings
        (2, 64, 2, 64, 4, "instance", "fp32"),  # mostly the network and its optimizer
        (2, 128, 16, 8, 4, "none", "bf16"),
        (3, 32, 2, 8, 3, "batch", "fp32"),
    ],
)
def test_the_estimate_is_near_the_peak_of_a_real_step(
    dims, crop, batch, fm, levels, norm, precision
):
    measured = measured_step(dims, crop, batch, fm, levels, norm, precision)
    architecture = {"dims": dims, "feature_maps": fm, "levels": levels, "norm": norm}
    estimate = training_memory(architecture, (crop,) * dims, batch, precision).total
    assert 0.7 * measured <= estimate <= 2.0 * measured, (estimate, measured)


@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
@pytest.mark.parametrize("dims, fm, levels", [(2, 8, 4), (3, 4, 2), (2, 16, 1)])
def test_the_parameters_are_counted_as_the_network_has_them(dims, fm, levels, norm):
    network = UNet(dims=dims, feature_maps=fm, levels=levels, num_classes=3, norm=norm)
    counted = parameter_count(dict(network.config))
    assert counted == sum(parameter.numel() for parameter in network.parameters())


def memory_of(gigabytes: float) -> DeviceMemory:
    return DeviceMemory("cpu", "RAM", int(gigabytes * 1e9), 0.8)


def refusal(settings: TrainingSettings, memory: DeviceMemory, **kw) -> InputError:
    network = training_network(settings, base=kw.pop("base", None))
    with pytest.raises(InputError) as caught:
        require_training_fits(settings, memory, architecture=network, fine_tune=kw["fine_tune"])
    return caught.value


def fits(settings: TrainingSettings, memory: DeviceMemory) -> bool:
    try:
        require_training_fits(
            settings, memory, architecture=training_network(settings), fine_tune=False
        )
    except InputError:
        return False
    return True


def test_each_value_offered_fits_and_one_more_does_not():
    memory = memory_of(2)
    settings = TrainingSettings(crop_size=256, batch_size=16, feature_maps=16)
    error = refusal(settings, memory, fine_tune=False)
    offered = dict(re.findall(r"(\w+) up to (\d+)", error.reason))
    assert set(offered) == {"batch_size", "crop_size", "feature_maps", "levels"}, error.reason
    assert error.where == "batch_size"
    steps = {"batch_size": 1, "crop_size": 16, "feature_maps": 1, "levels": 1}
    for field, text in offered.items():
        value = int(text)
        assert fits(settings.replace(**{field: value}), memory), field
        assert not fits(settings.replace(**{field: value + steps[field]}), memory), field
    assert (
        "need about 2.1 GB to train on cpu (fp32), more than the 1.6 GB of RAM a run may use here (80% of the 2.0 GB available now)"
        in error.reason
    )


def test_a_fine_tune_is_offered_only_the_crop_and_batch_and_counts_its_base_network():
    base = {"dims": 2, "feature_maps": 32, "levels": 5, "norm": "instance", "num_classes": 2}
    settings = TrainingSettings(crop_size=512, batch_size=64)
    error = refusal(settings, memory_of(4), base=base, fine_tune=True)
    assert "(with the base model's network)" in error.reason
    assert re.findall(r"(\w+) up to", error.reason) == ["batch_size", "crop_size"]
    wide = training_network(settings, base=base)
    new = training_network(settings)
    crop = crop_shape_for(512, 2, 5)
    assert (
        training_memory(wide, crop, 64, "fp32").total > training_memory(new, crop, 64, "fp32").total
    )


def test_bf16_where_the_device_has_it_needs_less():
    settings = TrainingSettings(crop_size=256)
    network = training_network(settings)
    native = DeviceMemory("cpu", "RAM", 10**12, 0.8, fast_bf16=True)
    plain = DeviceMemory("cpu", "RAM", 10**12, 0.8, fast_bf16=False)
    with_bf16 = require_training_fits(settings, native, architecture=network, fine_tune=False)
    without = require_training_fits(settings, plain, architecture=network, fine_tune=False)
    assert (with_bf16.precision, without.precision) == ("bf16", "fp32")
    assert with_bf16.total < without.total
    assert with_bf16.fixed == without.fixed == WORKING_BYTES


def test_unknown_free_memory_checks_the_crop_rule_only():
    unknown = DeviceMemory("cpu", "RAM", None, 0.8)
    settings = TrainingSettings(crop_size=4096, batch_size=1024)
    network = training_network(settings)
    require_training_fits(settings, unknown, architecture=network, fine_tune=False)
    odd = TrainingSettings(crop_size=100)
    with pytest.raises(InputError, match="for example 96 or 112") as caught:
        require_training_fits(odd, unknown, architecture=training_network(odd), fine_tune=False)
    assert caught.value.where == "crop_size"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/meminfo")
def test_the_cpu_has_its_available_ram_and_a_missing_gpu_is_an_input_error():
    ram = device_memory("cpu")
    assert ram.device == "cpu" and ram.kind == "RAM" and ram.available is not None
    assert abs(ram.available - ram_available()) < 2e9
    assert ram.usable == int(ram.available * 0.8)
    with pytest.raises(InputError) as caught:
        device_memory("cuda:99")
    assert caught.value.where == "device"
