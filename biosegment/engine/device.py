"""Choose the torch device a job runs on.

The device name comes from the job or the config (``auto``, ``cpu``, ``cuda``, ``cuda:1``,
``mps``); ``auto`` takes a CUDA GPU when there is one, then Apple's MPS, then the CPU. Asking
for an accelerator the machine lacks is an input error, not a silent fall-back, so a person
who asked for a GPU learns they are not getting one.
"""

from __future__ import annotations

import torch

from biosegment.errors import InputError

__all__ = ["resolve_device", "available_devices", "has_fast_bfloat16", "apply_threads"]


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def available_devices() -> list[str]:
    """Names of the devices this machine can run on, best first (``cpu`` always last)."""
    names = [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    if _mps_available():
        names.append("mps")
    names.append("cpu")
    return names


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """Turn a device name into a :class:`torch.device` that exists on this machine.

    :param name: ``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda``, ``cuda:<index>`` or
        ``mps``; a :class:`torch.device` passes through after the same check.
    :returns: the device to move models and tensors to.
    :raises InputError: for an unknown name or a device this machine does not have.
    """
    text = str(name).strip().lower() if name is not None else "auto"
    if text in ("", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise InputError(
            f"unknown device {name!r}; use auto, cpu, cuda, cuda:<n> or mps", where="device"
        ) from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        count = torch.cuda.device_count()
        index = 0 if device.index is None else device.index
        if index >= count:
            have = f"{count} CUDA device(s)" if count else "no CUDA device"
            raise InputError(
                f"device {text!r} requested but this machine has {have}", where="device"
            )
        return device
    if device.type == "mps":
        if not _mps_available():
            raise InputError("device 'mps' requested but MPS is not available here", where="device")
        return device
    raise InputError(
        f"unsupported device {name!r}; use auto, cpu, cuda, cuda:<n> or mps", where="device"
    )


def has_fast_bfloat16(device: torch.device) -> bool:
    """True when ``device`` multiplies bfloat16 in hardware (AMX or AVX-512 BF16 CPUs, CUDA
    GPUs from Ampere on); elsewhere bfloat16 is emulated and slower than float32."""
    device = torch.device(device)
    if device.type == "cuda":
        index = torch.cuda.current_device() if device.index is None else device.index
        return torch.cuda.get_device_capability(index)[0] >= 8
    if device.type == "cpu":
        checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
        # Private probes, guarded: an older or newer torch without them means "no".
        return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)
    return False


def apply_threads(threads: int) -> int:
    """Use ``threads`` CPU threads for the network from now on (0 leaves PyTorch's choice).

    The setting is per process: a worker applies it before each job. On a machine shared with
    other work, fewer threads than cores are often faster (OpenMP threads wait for each other
    whenever one is descheduled).

    :returns: the number of threads in use afterwards.
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise InputError(
            f"threads must be 0 or a positive whole number, not {threads!r}", where="threads"
        )
    if threads and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()
