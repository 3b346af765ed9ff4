"""`finetune-mlp`: Garg & Jain's evaluation protocol, minus its test-set selection.

What their released code did (METHODS.md section 6): the pretrained encoder plus an MLP head
(512 -> 512 -> classes, with BatchNorm) trained with SGD (lr 1e-3, momentum 0.9) on STL10's
labelled train split with horizontal flips. The line meant to freeze the encoder freezes
nothing, so EVERYTHING is trained: encoder and head, end to end. They measured test accuracy
after every epoch and kept the best.

What this protocol does: the same model and optimiser, everything trained (a copy of the
encoder, so other protocols still see the pretrained weights), on the labelled train split;
after every epoch the dataset's primary metric on the VALIDATION split (carved from train by
the card), the best epoch's weights kept, and only they score test, once, through
EvalContext.score_test. So it is their protocol minus the test-set selection.

Settings in `eval.finetune_mlp`: epochs, lr, momentum, batch_size, weight_decay, hidden (512),
hflip_p. Ours where their code is silent: a constant learning rate (no schedule appears in it),
weight decay 0 by default, the epoch count and batch size, and no augmentation beyond flips.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from byol_bench.training.augment import Normalize
from byol_bench.data import LoadedDataset
from byol_bench.data.views import as_tensor
from byol_bench.evaluation.context import PROTOCOLS, EvalContext
from byol_bench.evaluation.finetune import predict, with_seeded_rng

PROTOCOL = "finetune-mlp"


def mlp_classifier(encoder: nn.Module, hidden: int, n_out: int) -> nn.Sequential:
    """encoder -> Linear(d, hidden) -> BN -> ReLU -> Linear(hidden, n_out) (their eval head)."""
    return nn.Sequential(encoder, nn.Linear(encoder.feat_dim, hidden), nn.BatchNorm1d(hidden),
                         nn.ReLU(inplace=True), nn.Linear(hidden, n_out))


def parameter_change(before: nn.Module, after: nn.Module) -> float:
    """Relative L2 change of all parameters, |theta_after - theta_before| / |theta_before|."""
    diff = sum(float((a.detach() - b.detach()).pow(2).sum()) for a, b in zip(after.parameters(), before.parameters()))
    norm = sum(float(b.detach().pow(2).sum()) for b in before.parameters())
    return (diff / norm) ** 0.5 if norm > 0 else float("nan")


@with_seeded_rng
def finetune_mlp(encoder: nn.Module, data: LoadedDataset, train_labels: np.ndarray, cfg: dict, seed: int,
                 device: torch.device, val_metric) -> tuple[nn.Sequential, float, int]:
    """Train a copy of `encoder` + the MLP head end to end on the train split; returns the model
    of the best validation epoch, its validation score and that epoch (1-based).
    `val_metric(scores) -> float` scores val predictions; test is not touched here."""
    ft = cfg["eval"]["finetune_mlp"]
    multilabel = data.card.task == "multilabel"
    n_out = train_labels.shape[1] if multilabel else data.num_classes
    model = mlp_classifier(copy.deepcopy(encoder), ft["hidden"], n_out).to(device)
    model.requires_grad_(True)  # everything trains, as in the authors' code
    normalize = Normalize(data.card.mean, data.card.std).to(device)
    images = data.images["train"]  # rows are read per batch (it may be a read-only memory map)
    labels = torch.from_numpy(np.asarray(train_labels))
    opt = torch.optim.SGD(model.parameters(), lr=ft["lr"], momentum=ft["momentum"],
                          weight_decay=ft["weight_decay"])
    gen = torch.Generator().manual_seed(seed)
    batch = min(ft["batch_size"], len(images))
    # drop the last partial batch: a batch of one would break the head's BatchNorm
    steps_per_epoch = max(1, len(images) // batch)
    best_score, best_epoch, best_state = -np.inf, 0, None
    for epoch in range(ft["epochs"]):
        model.train()
        order = torch.randperm(len(images), generator=gen)
        for s in range(steps_per_epoch):
            idx = order[s * batch:(s + 1) * batch]
            x = as_tensor(images[idx.numpy()]).to(device).float().div_(255)
            flip = (torch.rand(len(idx), generator=gen) < ft["hflip_p"]).to(device)
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            logits = model(normalize(x))
            y = labels[idx].to(device)
            loss = (F.binary_cross_entropy_with_logits(logits, y.float()) if multilabel
                    else F.cross_entropy(logits, y.long()))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        score = val_metric(predict(model, data.images["val"], normalize, cfg["eval"]["batch_size"], device))
        if score > best_score:
            best_score, best_epoch = score, epoch + 1
            best_state = copy.deepcopy(model.state_dict())
    if best_state is not None:
        model.load_state_dict(best_state)
    return model, float(best_score), best_epoch


@PROTOCOLS.register(PROTOCOL, description="Garg & Jain's eval: encoder + MLP head (512, BN) all trained with SGD; "
                                          "epoch chosen on val, test scored once")
def finetune_mlp_protocol(ctx: EvalContext) -> dict[str, float]:
    device = ctx.accelerator.device
    model, val_score, epoch = finetune_mlp(
        ctx.encoder, ctx.data, ctx.labels("train"), ctx.cfg, ctx.seed, device,
        lambda scores: ctx.val_metrics(scores)[ctx.primary_metric])
    ctx.info[ctx.prefix + PROTOCOL] = {
        "epoch": epoch, f"val_{ctx.primary_metric}": val_score,
        "encoder_relative_change": parameter_change(ctx.encoder, model[0])}
    normalize = Normalize(ctx.data.card.mean, ctx.data.card.std).to(device)
    scores = predict(model, ctx.data.images["test"], normalize, ctx.cfg["eval"]["batch_size"], device)
    return ctx.score_test(PROTOCOL, scores)
