"""Float32 islands inside mixed-precision training.

`accelerator.autocast()` wraps the whole training step, and `torch.no_grad()` does not turn
autocast off: a matmul inside it runs in bf16/fp16 whatever its inputs' dtype. Scores that pick
partners or pseudo-labels must not depend on the precision setting (bf16 has 8 bits of mantissa:
cosines near a threshold flip, and near-equal scores tie), so they are computed here in float32.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor


@contextmanager
def float32_math(like: Tensor) -> Iterator[None]:
    """Autocast off for the device of `like`; callers cast their inputs with `at_least_float32`."""
    with torch.autocast(device_type=like.device.type, enabled=False):
        yield


def at_least_float32(x: Tensor) -> Tensor:
    """Half precision up to float32; float32 and float64 as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
