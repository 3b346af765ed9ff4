"""Fine-tuning (encoder + linear head, labels) with the epoch chosen on validation.

Shared by the semi-supervised protocol (p% of the labelled train split) and transfer. The
encoder is copied, so other protocols keep seeing the pretrained weights. Each epoch ends with
a validation score on the dataset's primary metric; the best epoch's weights are kept and only
they score test, once. Augmentation while fine-tuning: random resized crop (scale 0.5-1) and
eval.finetune.hflip_p (ours; the papers do not say).
"""
from __future__ import annotations

import copy
import functools
import inspect

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from byol_bench.training.augment import Normalize, resized_crop_flip, sample_crop_boxes
from byol_bench.data import LoadedDataset
from byol_bench.data.splits import label_strata
from byol_bench.data.views import as_tensor
from byol_bench.training.optim import param_groups, warmup_cosine_lr

FINETUNE_CROP_SCALE = (0.5, 1.0)


def stratified_subset(labels: np.ndarray, percent: float, seed: int) -> np.ndarray:
    """Indices of a stratified `percent`% subset, at least one per class, drawn with `seed` alone:
    every method gets the same subset at a given seed (paired comparison). Multi-label data is
    stratified by each image's first positive label (or 'none'), as the card's splits are
    (byol_bench.data.splits.label_strata)."""
    strata = label_strata(labels)
    if percent >= 100:
        return np.arange(len(strata))
    rng = np.random.default_rng([seed, int(round(percent * 1000))])
    chosen = []
    for cls in np.unique(strata):
        members = np.flatnonzero(strata == cls)
        k = max(1, int(round(len(members) * percent / 100)))
        chosen.append(rng.choice(members, size=k, replace=False))
    return np.sort(np.concatenate(chosen))


def with_seeded_rng(fn):
    """Run `fn` (which takes `seed`) with torch's global RNG seeded from it and restored after:
    its draws (the head's init, dropout) depend on the run seed alone, whatever ran before (a
    fresh run and an evaluation-only run agree), and no one outside sees a reseed."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        seed = inspect.signature(fn).bind(*args, **kwargs).arguments["seed"]
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return fn(*args, **kwargs)
    return run


@torch.no_grad()
def predict(model: nn.Module, images: np.ndarray, normalize: Normalize, batch_size: int, device) -> np.ndarray:
    model.eval()
    out = [model(normalize(as_tensor(images[i:i + batch_size]).to(device))).float().cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out).numpy()


@with_seeded_rng
def finetune(encoder: nn.Module, data: LoadedDataset, train_idx: np.ndarray, cfg: dict, seed: int,
             device: torch.device, val_metric) -> tuple[nn.Module, float, int]:
    """Train a copy of `encoder` + a linear head on train[train_idx]; returns the model of the best
    validation epoch, its validation score and the epoch (1-based). `val_metric(scores)` -> float."""
    ft = cfg["eval"]["finetune"]
    multilabel = data.card.task == "multilabel"
    n_out = data.labels["train"].shape[1] if multilabel else data.num_classes
    model = nn.Sequential(copy.deepcopy(encoder), nn.Linear(encoder.feat_dim, n_out)).to(device)
    normalize = Normalize(data.card.mean, data.card.std).to(device)
    images = torch.from_numpy(data.images["train"][train_idx])
    labels = torch.from_numpy(data.labels["train"][train_idx])
    opt = torch.optim.AdamW(param_groups(model, ft["weight_decay"]), lr=ft["lr"])
    gen = torch.Generator().manual_seed(seed)
    batch = min(ft["batch_size"], len(images))
    steps_per_epoch = max(1, len(images) // batch)
    total = ft["epochs"] * steps_per_epoch
    best_score, best_epoch, best_state, step = -np.inf, 0, None, 0
    for epoch in range(ft["epochs"]):
        model.train()
        order = torch.randperm(len(images), generator=gen)
        for s in range(steps_per_epoch):
            idx = order[s * batch:(s + 1) * batch]
            x = images[idx].to(device).float().div_(255)
            boxes = sample_crop_boxes(len(idx), FINETUNE_CROP_SCALE, 1.0, gen, "cpu").to(device)
            flip = (torch.rand(len(idx), generator=gen) < ft["hflip_p"]).to(device)
            x = normalize(resized_crop_flip(x, boxes, flip, x.shape[-1]))
            y = labels[idx].to(device)
            logits = model(x)
            loss = F.binary_cross_entropy_with_logits(logits, y.float()) if multilabel else F.cross_entropy(logits, y.long())
            for g in opt.param_groups:
                g["lr"] = warmup_cosine_lr(step, total, 0, ft["lr"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        score = val_metric(predict(model, data.images["val"], normalize, cfg["eval"]["batch_size"], device))
        if score > best_score:
            best_score, best_epoch = score, epoch + 1
            best_state = copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return model, float(best_score), best_epoch
