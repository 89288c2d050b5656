"""Which kernel implementation the losses use (private): eager, fused, or compiled."""

from __future__ import annotations

import functools
import os

import torch

KERNEL_MODES = ("auto", "eager", "fused", "compile")
_kernel_mode = os.environ.get("ALIGNCLIP_LOSS_KERNELS", "auto")


def set_kernel_mode(mode: str) -> str:
    """Select the kernel implementation; returns the previous mode.

    ``auto`` (default): compiled fused kernels on CUDA when Triton is available, else
    eager. ``eager``: in-place eager kernels. ``fused``: the fused kernels without
    compilation (slow; for testing their math). ``compile``: always compile (also CPU).
    Also settable with the environment variable ``ALIGNCLIP_LOSS_KERNELS``.
    """
    global _kernel_mode
    if mode not in KERNEL_MODES:
        raise ValueError(f"kernel mode must be one of {KERNEL_MODES}, got {mode!r}")
    previous, _kernel_mode = _kernel_mode, mode
    return previous


@functools.cache
def _triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_mode(device: torch.device) -> str:
    """The kernel implementation used on ``device`` under the current mode."""
    if _kernel_mode == "auto":
        return "compile" if device.type == "cuda" and _triton_available() else "eager"
    return _kernel_mode
