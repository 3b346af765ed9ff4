"""Reference rows (ours; METHODS.md section 5): any SSL method must beat `random-init`, and
`supervised` is the same encoder trained with labels, the upper reference."""
from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from byol_bench.method import METHODS, Method


@METHODS.register("random-init", description="reference: the untrained encoder under the same evaluation")
class RandomInit(Method):
    """Reference: the untrained encoder under the same evaluation."""
    trains = False
    reference = True
    config_sections = ("backbone",)


@METHODS.register("supervised", description="reference: the same encoder trained with labels (one augmented view, cross-entropy)")
class Supervised(Method):
    """Reference: the same encoder + a linear classifier trained with labels on the train split,
    one BYOL-augmented view per image, same optimiser and schedule as pretraining; evaluated with
    the same frozen-feature protocols as every SSL method."""
    views = 1
    uses_labels = True
    reference = True

    def __init__(self, encoder, cfg, options, num_classes, task):
        super().__init__(encoder, cfg, options, num_classes, task)
        self.online = nn.Sequential(encoder, nn.Linear(encoder.feat_dim, num_classes))

    @property
    def encoder(self) -> nn.Module:
        return self.online[0]

    def training_step(self, model, views, ctx):
        logits = model(views[0])
        if self.task == "multilabel":
            loss = F.binary_cross_entropy_with_logits(logits, ctx.labels.float())
        else:
            loss = F.cross_entropy(logits, ctx.labels)
        return loss, {}
