"""The CPU a benchmark ran on, in words: model name and the instruction-set flags that decide
its speed (AVX2/FMA, AVX-512, native bf16, AMX). Torch-free, so client-side scripts (the
red-team replay) can record it without loading the engine."""

from __future__ import annotations

import platform
from pathlib import Path

__all__ = ["cpu_model_and_flags"]


def cpu_model_and_flags() -> tuple[str, list[str]]:
    """The CPU's model name and the instruction-set flags that decide training speed here."""
    model, flags = platform.processor() or platform.machine(), []
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            model = value.strip()
        elif key.strip() == "flags":
            present = set(value.split())
            wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
            flags = [flag for flag in wanted if flag in present]
            break
    return model, flags
