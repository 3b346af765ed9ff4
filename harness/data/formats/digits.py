"""The embedded default: scikit-learn's bundled handwritten digits (no download).

1,797 real 8x8 grayscale images (values 0..16) of 10 classes, rescaled to 0..255 and
upsampled (bilinear) to the requested size. Split: fixed stratified train/val/test from the
card's split seed and fractions.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from byol_bench.data.catalog import LOADERS
from byol_bench.data.card import DatasetCard
from byol_bench.data.dataset import LoadedDataset
from byol_bench.data.splits import stratified_split


@LOADERS.register("sklearn-digits")
def load_digits_dataset(card: DatasetCard, root: Path, image_size: int) -> LoadedDataset:
    """scikit-learn's load_digits, upsampled to image_size, stratified split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(bunch.images.astype(np.float32) * (255.0 / 16.0))[:, None]
    if image_size != 8:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    images = x.round().clamp(0, 255).to(torch.uint8).numpy()
    labels = bunch.target.astype(np.int64)
    parts = stratified_split(labels, card.splits or {"train": 0.6, "val": 0.2, "test": 0.2}, card.split_seed)
    return LoadedDataset(
        card=card,
        images={k: images[idx] for k, idx in parts.items()},
        labels={k: labels[idx] for k, idx in parts.items()},
        classes=list(card.classes) or [str(i) for i in range(10)],
    )
