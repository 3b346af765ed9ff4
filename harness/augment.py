"""BYOL's two-view augmentation pipeline (Grill et al. 2020, Table 6) with torchvision.transforms.v2.

The views are produced on uint8 tensors (C, H, W) in the data loader; conversion to float and
normalisation happen batched on the training device (`Normalize`), so workers ship uint8 (4x
less to copy) and the per-sample pipeline stays short. Grayscale data (C = 1) gets no
saturation, hue or grayscale step; brightness/contrast still apply.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torchvision.transforms import v2


def _blur_kernel(image_size: int) -> int:
    """About 10% of the image side, odd, at least 3 (BYOL uses 23 px at 224 px)."""
    k = max(3, int(round(0.1 * image_size)))
    return k if k % 2 else k + 1


def byol_view_transform(aug: dict, image_size: int, channels: int, view: int) -> v2.Compose:
    """The transform for view 0 or 1; blur and solarize probabilities differ between views."""
    color = channels == 3
    jitter = v2.ColorJitter(aug["brightness"], aug["contrast"],
                            aug["saturation"] if color else 0.0, aug["hue"] if color else 0.0)
    steps: list[nn.Module] = [
        v2.RandomResizedCrop(image_size, scale=tuple(aug["crop_scale"]), antialias=True),
        v2.RandomHorizontalFlip(aug["hflip_p"]),
        v2.RandomApply([jitter], p=aug["jitter_p"]),
    ]
    if color and aug["grayscale_p"] > 0:
        steps.append(v2.RandomGrayscale(aug["grayscale_p"]))
    if aug["blur_p"][view] > 0:
        blur = v2.GaussianBlur(_blur_kernel(image_size), sigma=tuple(aug["blur_sigma"]))
        steps.append(v2.RandomApply([blur], p=aug["blur_p"][view]))
    if aug["solarize_p"][view] > 0:
        steps.append(v2.RandomSolarize(threshold=128, p=aug["solarize_p"][view]))
    return v2.Compose(steps)


class Normalize(nn.Module):
    """uint8 (B, C, H, W) -> float, scaled to [0, 1], minus mean, over std (per channel)."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1) * 255.0)
        self.register_buffer("inv_std", 1.0 / (torch.tensor(std).view(1, -1, 1, 1) * 255.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self.mean) * self.inv_std


class ViewDataset(torch.utils.data.Dataset):
    """uint8 images (N, C, H, W) -> (view_1, ..., view_n, label or index)."""

    def __init__(self, images: torch.Tensor, transforms: list, labels: torch.Tensor | None = None):
        self.images = images
        self.transforms = transforms
        self.labels = labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        img = self.images[i]
        views = [t(img) for t in self.transforms]
        return (*views, self.labels[i] if self.labels is not None else i)
