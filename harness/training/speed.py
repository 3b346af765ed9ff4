"""How the networks run, not what they learn: memory format and compilation (pretrain.channels_last,
pretrain.compile). Both are off by default and out of the run hash (byol_bench.config
NON_IDENTITY_KEYS): they change float rounding, not the method. benchmarks.step and
benchmarks.peers apply them the way the training loop does, through this one function.
"""
from __future__ import annotations

import torch


def apply_speed_settings(method, pre: dict) -> bool:
    """Put the method's networks (online, and the EMA target where there is one) in NHWC with
    `channels_last`, and compile their forwards in place with `compile` (nn.Module.compile:
    parameter names and state_dict keys stay as they are, so checkpoints and the EMA are
    unchanged; on CPU inductor needs a C++ compiler). Returns whether batches should be made
    channels_last too."""
    networks = [method.online] + ([method.target] if isinstance(getattr(method, "target", None),
                                                                 torch.nn.Module) else [])
    for net in networks:
        if pre["channels_last"]:
            net.to(memory_format=torch.channels_last)
        if pre["compile"]:
            net.compile()
    return pre["channels_last"]
