"""SyncBatchNorm in, and back out: global-batch statistics for DDP training only.

Policy (DESIGN.md): SyncBatchNorm only on CUDA with more than one process (gloo has none), for
every network that normalises the training batch, and never inside a protocol that runs on one
process: there a SyncBatchNorm in train mode would all_gather with processes that are not
there (fine-tuning on the main process would hang the job).
"""
from __future__ import annotations

import copy

import torch.nn as nn
from accelerate import Accelerator


def sync_batchnorm_wanted(accelerator: Accelerator) -> bool:
    return accelerator.num_processes > 1 and accelerator.device.type == "cuda"


class BatchNormAnyD(nn.modules.batchnorm._BatchNorm):
    """A local BatchNorm for inputs of any rank >= 2, as SyncBatchNorm accepts them."""

    def _check_input_dim(self, input):
        if input.dim() < 2:
            raise ValueError(f"expected an input of at least 2 dimensions, got {input.dim()}")


def revert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """`module` if it has no SyncBatchNorm; else a copy with each one made a local BatchNorm with
    the same weights and running statistics (the training model is left as it is)."""
    if not any(isinstance(m, nn.SyncBatchNorm) for m in module.modules()):
        return module
    return _revert(copy.deepcopy(module))


def _revert(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.SyncBatchNorm):
        local = BatchNormAnyD(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats)
        local.load_state_dict(module.state_dict())
        local.train(module.training)
        return local
    for name, child in module.named_children():
        setattr(module, name, _revert(child))
    return module
