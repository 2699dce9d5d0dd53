"""How much memory the device a run will use has free now, less a safety margin.

:func:`device_memory` answers for a device name as the settings and the config give it
(``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``mps``): the RAM for the CPU (and for Apple's MPS,
which shares it), the free memory of a CUDA GPU as torch reports it. A run may use
:attr:`DeviceMemory.usable`, what is available less a margin kept for everything else the
machine runs. The answer also says whether ``auto`` precision computes in bfloat16 there.

Asking about the CPU imports no torch, so the web UI and the CLI can check a request without
loading it. ``auto`` needs torch only where a GPU may be present (a GPU driver is installed);
``exact=True`` always asks torch, as a job that is about to train does.
"""

from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DeviceMemory", "device_memory", "ram_available", "RAM_SHARE", "GPU_SHARE"]

#: Share of the available RAM a training run may plan to use: the rest stays for the web UI,
#: the other jobs and whatever else runs on the machine (available RAM moves while a run
#: starts).
RAM_SHARE = 0.8
#: Share of a GPU's free memory a run may plan to use: the CUDA allocator's caching and
#: fragmentation take the rest.
GPU_SHARE = 0.9
# Where an installed GPU driver shows itself on Linux (NVIDIA, then AMD's ROCm).
_GPU_DRIVER_SIGNS = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/kfd")


@dataclass(frozen=True, slots=True)
class DeviceMemory:
    """The memory a run on one device may use.

    ``available`` is None where this system does not say how much is free (no check is then
    possible). ``fast_bf16`` is whether ``auto`` precision computes in bfloat16 there; None
    where that was not asked (torch not loaded: ``auto`` is then counted as float32, which
    needs more).
    """

    device: str  #: ``cpu``, ``cuda:0``, ``mps``
    kind: str  #: what the memory is, in words: ``RAM`` or ``GPU memory``
    available: int | None  #: bytes free now
    share: float  #: the share of ``available`` a run may use
    fast_bf16: bool | None = None

    @property
    def usable(self) -> int | None:
        """Bytes a run may plan to use (None: unknown)."""
        return None if self.available is None else int(self.available * self.share)


def ram_available() -> int | None:
    """Bytes of RAM available to new work now (the page cache counts as free), or None."""
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text(encoding="ascii", errors="replace").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    if sys.platform == "win32":
        return _windows_ram_available()
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES")
        page_size = os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return pages * page_size if pages > 0 and page_size > 0 else None


class _MemoryStatus(ctypes.Structure):
    # MEMORYSTATUSEX of the Windows API
    _fields_ = [
        ("length", ctypes.c_ulong),
        ("load", ctypes.c_ulong),
        ("total_physical", ctypes.c_ulonglong),
        ("available_physical", ctypes.c_ulonglong),
        ("total_page_file", ctypes.c_ulonglong),
        ("available_page_file", ctypes.c_ulonglong),
        ("total_virtual", ctypes.c_ulonglong),
        ("available_virtual", ctypes.c_ulonglong),
        ("available_extended_virtual", ctypes.c_ulonglong),
    ]


def _windows_ram_available() -> int | None:
    status = _MemoryStatus()
    status.length = ctypes.sizeof(_MemoryStatus)
    kernel = getattr(ctypes, "windll", None)
    if kernel is None or not kernel.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):
        return None
    return int(status.available_physical)


def _gpu_may_be_present() -> bool:
    """False where no GPU can be there (so ``auto`` is the CPU without asking torch)."""
    if sys.platform == "darwin":
        return False  # MPS shares the RAM: the CPU's answer is the right one
    if sys.platform.startswith("linux"):
        return any(Path(sign).exists() for sign in _GPU_DRIVER_SIGNS)
    return True


def _ram(device: str, fast_bf16: bool | None = None) -> DeviceMemory:
    return DeviceMemory(device, "RAM", ram_available(), RAM_SHARE, fast_bf16)


def device_memory(name: str | None = "auto", *, exact: bool = False) -> DeviceMemory:
    """The memory of the device ``name`` resolves to on this machine.

    :param name: a device name as :func:`~biosegment.engine.device.resolve_device` takes it
        (None: ``auto``).
    :param exact: ask torch even for the CPU (it also says whether ``auto`` precision is
        bfloat16 there); a job about to train has torch loaded anyway.
    :raises InputError: for an unknown device or one this machine does not have (``where``
        is ``device``).
    """
    text = (name or "auto").strip().lower()
    if not exact and (text == "cpu" or (text == "auto" and not _gpu_may_be_present())):
        return _ram("cpu")
    # torch is needed to find or query an accelerator: loaded only here
    import torch

    from biosegment.engine.device import has_fast_bfloat16, resolve_device

    device = resolve_device(text)
    fast_bf16 = has_fast_bfloat16(device)
    if device.type != "cuda":
        return _ram(str(device), fast_bf16)
    index = torch.cuda.current_device() if device.index is None else device.index
    free, _total = torch.cuda.mem_get_info(index)
    return DeviceMemory(f"cuda:{index}", "GPU memory", int(free), GPU_SHARE, fast_bf16)
