"""The pretraining loader: which images, how many per process, and how views are made.

Two augmentation backends (augment.backend): "batched" makes both views from the batch on the
device (byol_bench.training.augment.BatchedViewAugment); "v2" makes them per image in the loader's
workers with torchvision's transforms.
"""
from __future__ import annotations

import numpy as np
import torch
from accelerate import Accelerator

from byol_bench.data import LoadedDataset
from byol_bench.data.card import PRETRAIN_SPLITS
from byol_bench.errors import UserError
from byol_bench.method import Method
from byol_bench.training.augment import BatchedViewAugment, Normalize, ViewDataset, byol_view_transform


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)


def make_loader(method: Method, data: LoadedDataset, cfg: dict, accelerator: Accelerator, seed: int):
    pre, aug = cfg["pretrain"], cfg["augment"]
    card = data.card
    size = data.images["train"].shape[-1]
    if method.uses_labels:
        images, labels = data.images["train"], torch.from_numpy(data.labels["train"])
    else:
        splits = cfg["data"].get("pretrain_splits", "train+unlabeled")
        images, labels = data.pretrain_images(splits), monitoring_labels(data, splits)
    if aug["backend"] == "v2":
        transforms = [byol_view_transform(aug, size, card.channels, v) for v in range(method.views)]
    elif aug["backend"] == "batched":
        transforms = []  # views are made from the batch on the device (make_views)
    else:
        raise UserError(f"unknown augment.backend {aug['backend']!r}; valid: batched, v2")
    dataset = ViewDataset(images, transforms, labels)  # rows read per item: no copy of the split
    per_process = max(1, pre["batch_size"] // accelerator.num_processes)
    if per_process > len(dataset):
        per_process = len(dataset)
    return torch.utils.data.DataLoader(
        dataset, batch_size=per_process, shuffle=True, drop_last=pre["drop_last"],
        num_workers=cfg["data"]["num_workers"], worker_init_fn=_seed_worker,
        generator=torch.Generator().manual_seed(seed), pin_memory=accelerator.device.type == "cuda",
        persistent_workers=cfg["data"]["num_workers"] > 0)


def make_views(batch_views: list[torch.Tensor], augments: list[BatchedViewAugment] | None,
               normalize: Normalize, generators: tuple[torch.Generator, torch.Generator] | None
               ) -> list[torch.Tensor]:
    """Normalised float views: from the loader's views (v2) or made here from the batch
    (`generators`: one on the device for the parameters, one on the CPU for the jitter order)."""
    if augments is None:
        return [normalize(v) for v in batch_views]
    return [normalize(a(batch_views[0], *generators)) for a in augments]


def monitoring_labels(data: LoadedDataset, splits: str = "train+unlabeled") -> torch.Tensor | None:
    """Labels of `data.pretrain_images(splits)` (in its order) for MONITORING ONLY, e.g. how
    often TracIn's partner shares the true label; -1 where an image has none (the unlabeled split).
    SSL methods receive them as `ctx.labels` and must never train on them."""
    train_labels = data.labels.get("train")
    if train_labels is None:
        return None
    parts = [train_labels if name == "train" else
             np.full((len(data.images[name]), *train_labels.shape[1:]), -1, dtype=train_labels.dtype)
             for name in PRETRAIN_SPLITS[splits] if name in data.images]  # pretrain_images' order
    return torch.from_numpy(np.concatenate(parts))
