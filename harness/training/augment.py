"""BYOL's two-view augmentation (Grill et al. 2020, Table 6), in two interchangeable backends.

- `batched` (default): the whole uint8 batch is augmented on the training device with
  per-sample random parameters in a handful of tensor ops (one grid_sample for crop + flip,
  vectorised colour jitter, grouped-conv Gaussian blur, masked solarize). No per-image Python
  work, so data loading never bounds a CPU run, and on a GPU the CPU workers are free.
- `v2`: the reference per-sample pipeline from torchvision.transforms.v2, run in DataLoader
  workers (`data.num_workers`).
Not kornia: its random augmentations draw from torch's global RNG, and the batched backend
draws every parameter from the run's own generators (exact resume, reproducible views).

Both draw the same distributions: RandomResizedCrop(scale, ratio 3/4..4/3, 10 tries then the
whole image), horizontal flip, ColorJitter(b, c, s, h) with probability p, grayscale, Gaussian
blur (sigma 0.1..2, kernel ~10% of the side) and solarize (threshold 128) with the per-view
probabilities. Where the batched backend differs from torchvision, deliberately: bilinear
grid_sample instead of antialiased resize (crops only ever upsample here), and the random order
of the four jitter operations is drawn once per batch instead of once per image. Grayscale
data (C = 1) gets no saturation, hue or grayscale step.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.transforms import v2

from byol_bench.data.views import as_tensor

SOLARIZE_THRESHOLD = 128 / 255
# torchvision's rgb_to_grayscale (ITU-R 601), as the v2 backend's RandomGrayscale; uint8 data is
# converted by PIL's rule instead (byol_bench.data.images.array_to_channels).
GRAY_WEIGHTS = (0.2989, 0.587, 0.114)


def blur_kernel_size(image_size: int) -> int:
    """About 10% of the image side, odd, at least 3 (BYOL uses 23 px at 224 px)."""
    k = max(3, int(round(0.1 * image_size)))
    return k if k % 2 else k + 1


# ----------------------------------------------------------------------------- v2 reference

def byol_view_transform(aug: dict, image_size: int, channels: int, view: int) -> v2.Compose:
    """torchvision.transforms.v2 pipeline for view 0 or 1 on uint8 (C, H, W) tensors."""
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
        blur = v2.GaussianBlur(blur_kernel_size(image_size), sigma=tuple(aug["blur_sigma"]))
        steps.append(v2.RandomApply([blur], p=aug["blur_p"][view]))
    if aug["solarize_p"][view] > 0:
        steps.append(v2.RandomSolarize(threshold=128, p=aug["solarize_p"][view]))
    return v2.Compose(steps)


# ----------------------------------------------------------------------------- batched ops
# Each op takes float images in [0, 1] of shape (B, C, H, W) and per-sample parameters.

def grayscale(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 1, H, W) luma."""
    w = x.new_tensor(GRAY_WEIGHTS).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """factor * x + (1 - factor) * other, clamped (torchvision's _blend), factor per sample."""
    f = factor.view(-1, 1, 1, 1)
    return (f * x + (1 - f) * other).clamp_(0, 1)


def adjust_brightness(x, factor):
    return _blend(x, torch.zeros_like(x), factor)


def adjust_contrast(x, factor):
    gray = grayscale(x) if x.shape[1] == 3 else x
    return _blend(x, gray.mean(dim=(1, 2, 3), keepdim=True), factor)


def adjust_saturation(x, factor):
    return _blend(x, grayscale(x), factor)


def _rgb_to_hsv(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r, g, b = x.unbind(1)
    maxc, _ = x.max(1)
    minc, _ = x.min(1)
    delta = maxc - minc
    s = delta / torch.where(maxc == 0, torch.ones_like(maxc), maxc)
    dc = torch.where(delta == 0, torch.ones_like(delta), delta)
    rc, gc, bc = (maxc - r) / dc, (maxc - g) / dc, (maxc - b) / dc
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta == 0, torch.zeros_like(h), h)
    return torch.remainder(h / 6.0, 1.0), s, maxc


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.to(torch.int64) % 6
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    table = torch.stack([torch.stack(c, 1) for c in
                         ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))], 0)
    return table.gather(0, i.unsqueeze(0).unsqueeze(2).expand(1, *table.shape[1:])).squeeze(0)


def adjust_hue(x, shift):
    h, s, v = _rgb_to_hsv(x)
    h = torch.remainder(h + shift.view(-1, 1, 1), 1.0)
    return _hsv_to_rgb(h, s, v)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Separable Gaussian blur with a per-sample sigma; reflect padding like torchvision."""
    b, c, h, w = x.shape
    half = (kernel_size - 1) * 0.5
    pos = torch.linspace(-half, half, kernel_size, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (pos.view(1, -1) / sigma.view(-1, 1)) ** 2)
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, dim=0)  # (B*C, K)
    pad = kernel_size // 2
    y = F.pad(x.reshape(1, b * c, h, w), (pad, pad, pad, pad), mode="reflect")
    y = F.conv2d(y, k.view(b * c, 1, 1, kernel_size), groups=b * c)
    y = F.conv2d(y, k.view(b * c, 1, kernel_size, 1), groups=b * c)
    return y.view(b, c, h, w)


def solarize(x: torch.Tensor, threshold: float = SOLARIZE_THRESHOLD) -> torch.Tensor:
    return torch.where(x >= threshold, 1.0 - x, x)


def sample_crop_boxes(n: int, scale: tuple[float, float], aspect: float, generator: torch.Generator,
                      device, tries: int = 10) -> torch.Tensor:
    """RandomResizedCrop's box sampler, vectorised: (n, 4) of (cx, cy, w, h) as fractions of the
    image side. `aspect` = W / H of the source. Falls back to the whole image after `tries`."""
    area = torch.empty(n, tries, device=device).uniform_(*scale, generator=generator)
    log_r = torch.empty(n, tries, device=device).uniform_(math.log(3 / 4), math.log(4 / 3), generator=generator)
    ratio = torch.exp(log_r)
    w = torch.sqrt(area * ratio / aspect)   # fraction of the width
    h = torch.sqrt(area / ratio * aspect)   # fraction of the height
    ok = (w <= 1) & (h <= 1)
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.full((n,), -1, device=device))
    idx = first.clamp_min(0).unsqueeze(1)
    w = torch.where(first >= 0, w.gather(1, idx).squeeze(1), torch.ones(n, device=device))
    h = torch.where(first >= 0, h.gather(1, idx).squeeze(1), torch.ones(n, device=device))
    u = torch.rand(n, 2, device=device, generator=generator)
    cx = w / 2 + u[:, 0] * (1 - w)
    cy = h / 2 + u[:, 1] * (1 - h)
    return torch.stack([cx, cy, w, h], 1)


def resized_crop_flip(x: torch.Tensor, boxes: torch.Tensor, flip: torch.Tensor, size: int) -> torch.Tensor:
    """Crop each (cx, cy, w, h) box, mirror where `flip`, and resample to size x size (bilinear)."""
    cx, cy, w, h = boxes.unbind(1)
    sign = 1.0 - 2.0 * flip.to(x.dtype)
    theta = torch.zeros(x.shape[0], 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = w * sign
    theta[:, 0, 2] = 2 * cx - 1
    theta[:, 1, 1] = h
    theta[:, 1, 2] = 2 * cy - 1
    grid = F.affine_grid(theta, [x.shape[0], x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class BatchedViewAugment(nn.Module):
    """One BYOL view for a whole uint8 batch on its device; returns float images in [0, 1]."""

    def __init__(self, aug: dict, image_size: int, channels: int, view: int):
        super().__init__()
        self.aug, self.size, self.color, self.view = aug, image_size, channels == 3, view
        self.kernel = blur_kernel_size(image_size)

    def forward(self, images: torch.Tensor, generator: torch.Generator,
                order_generator: torch.Generator | None = None) -> torch.Tensor:
        """`generator` lives on the images' device and draws every per-sample parameter;
        `order_generator` (CPU; default `generator`, which must then be a CPU one) draws the
        jitter order, so no random number travels from the device to the host."""
        a, g = self.aug, generator
        n, dev = images.shape[0], images.device
        x = images.float().div_(255)
        rand = lambda *shape: torch.rand(*shape, device=dev, generator=g)  # noqa: E731
        uniform = lambda lo, hi: lo + (hi - lo) * rand(n)  # noqa: E731
        boxes = sample_crop_boxes(n, tuple(a["crop_scale"]), x.shape[-1] / x.shape[-2], g, dev)
        x = resized_crop_flip(x, boxes, rand(n) < a["hflip_p"], self.size)

        jitter = rand(n) < a["jitter_p"]
        ops = []
        if a["brightness"] > 0:
            ops.append((adjust_brightness, uniform(max(0, 1 - a["brightness"]), 1 + a["brightness"])))
        if a["contrast"] > 0:
            ops.append((adjust_contrast, uniform(max(0, 1 - a["contrast"]), 1 + a["contrast"])))
        if self.color and a["saturation"] > 0:
            ops.append((adjust_saturation, uniform(max(0, 1 - a["saturation"]), 1 + a["saturation"])))
        if self.color and a["hue"] > 0:
            ops.append((adjust_hue, uniform(-a["hue"], a["hue"])))
        order = torch.randperm(len(ops), generator=order_generator or g).tolist() if ops else []
        mask = jitter.view(-1, 1, 1, 1)  # no `if mask.any()`: that would sync the device each step
        for i in order:
            op, param = ops[i]
            x = torch.where(mask, op(x, param), x)
        if self.color and a["grayscale_p"] > 0:
            x = torch.where((rand(n) < a["grayscale_p"]).view(-1, 1, 1, 1), grayscale(x).expand_as(x), x)
        p_blur = a["blur_p"][self.view]
        if p_blur > 0:
            sigma = uniform(*a["blur_sigma"])
            x = torch.where((rand(n) < p_blur).view(-1, 1, 1, 1), gaussian_blur(x, sigma, self.kernel), x)
        p_sol = a["solarize_p"][self.view]
        if p_sol > 0:
            x = torch.where((rand(n) < p_sol).view(-1, 1, 1, 1), solarize(x), x)
        return x


# ----------------------------------------------------------------------------- plumbing

class Normalize(nn.Module):
    """Images (uint8 0..255, or float 0..1) -> (x - mean) / std per channel."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("inv_std", 1.0 / torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float().div_(255)
        return (x - self.mean) * self.inv_std


class ViewDataset(torch.utils.data.Dataset):
    """uint8 images (N, C, H, W) -> (view_1, ..., view_n, label or index).

    With no transforms (the batched backend) it returns the image itself once; the views are
    made on the device from the batch. `images` may be a tensor, a numpy array (the read-only
    memory-mapped cache included) or a row view (byol_bench.data.views.ConcatImages): only the
    rows asked for are read, so the dataset never holds a copy of the split."""

    def __init__(self, images, transforms: list, labels: torch.Tensor | None = None):
        self.images = images
        self.transforms = transforms
        self.labels = labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        img = self.images[i]
        if not isinstance(img, torch.Tensor):
            img = as_tensor(img)
        views = [t(img) for t in self.transforms] if self.transforms else [img]
        return (*views, self.labels[i] if self.labels is not None else i)

    def __getitems__(self, indices: list[int]) -> list[tuple]:
        """The DataLoader's batched fetch, the same items as __getitem__. Without transforms, a
        numpy source (a memory map, a row view) is read in one gather, 1.4x faster than one
        image at a time (measured: 30k vs 22k 96 px images/s on one core); a tensor stays per item."""
        if self.transforms or isinstance(self.images, torch.Tensor):
            return [self[i] for i in indices]
        batch = as_tensor(self.images[np.asarray(indices, dtype=np.int64)])
        return [(batch[k], self.labels[i] if self.labels is not None else i) for k, i in enumerate(indices)]
