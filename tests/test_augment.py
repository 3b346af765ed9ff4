"""Batched augmentation: each op equals torchvision's per-image op with the same parameters,
and the random pipeline has the right shapes, ranges, determinism and per-sample variety."""
import copy

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from byol_bench.training import augment as A
from byol_bench.config import DEFAULTS


def imgs(n=5, c=3, s=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, s, s), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("name, ours, theirs, lo, hi", [
    ("brightness", A.adjust_brightness, TF.adjust_brightness, 0.6, 1.4),
    ("contrast", A.adjust_contrast, TF.adjust_contrast, 0.6, 1.4),
    ("saturation", A.adjust_saturation, TF.adjust_saturation, 0.8, 1.2),
    ("hue", A.adjust_hue, TF.adjust_hue, -0.1, 0.1),
])
def test_colour_ops_match_torchvision_per_sample(name, ours, theirs, lo, hi):
    x = imgs().float() / 255
    factors = torch.linspace(lo, hi, len(x))
    got = ours(x.clone(), factors)
    for i in range(len(x)):
        torch.testing.assert_close(got[i], theirs(x[i], float(factors[i])), atol=2e-5, rtol=0)


def test_contrast_on_grayscale_images():
    x = imgs(c=1).float() / 255
    f = torch.full((len(x),), 0.7)
    for i in range(len(x)):
        torch.testing.assert_close(A.adjust_contrast(x, f)[i], TF.adjust_contrast(x[i], 0.7), atol=2e-5, rtol=0)


def test_blur_solarize_grayscale_match_torchvision():
    x = imgs(s=16).float() / 255
    sigma = torch.tensor([0.3, 0.7, 1.0, 1.5, 2.0])
    got = A.gaussian_blur(x, sigma, 5)
    for i in range(len(x)):
        ref = TF.gaussian_blur(x[i], [5, 5], [float(sigma[i])] * 2)
        torch.testing.assert_close(got[i], ref, atol=1e-5, rtol=0)
    u8 = imgs()
    torch.testing.assert_close(A.solarize(u8.float() / 255), TF.solarize(u8, 128).float() / 255)
    torch.testing.assert_close(A.grayscale(x), TF.rgb_to_grayscale(x), atol=1e-6, rtol=0)


def test_crop_of_whole_image_is_identity_and_flip_mirrors():
    x = imgs(n=2, s=8).float()
    whole = torch.tensor([[0.5, 0.5, 1.0, 1.0]] * 2)
    out = A.resized_crop_flip(x, whole, torch.tensor([False, True]), 8)
    torch.testing.assert_close(out[0], x[0], atol=1e-4, rtol=0)
    torch.testing.assert_close(out[1], x[1].flip(-1), atol=1e-4, rtol=0)
    # The left half, upsampled 2x horizontally: pixel columns repeat in pairs (away from borders).
    left = torch.tensor([[0.25, 0.5, 0.5, 1.0]])
    half = A.resized_crop_flip(x[:1], left, torch.tensor([False]), 8)
    torch.testing.assert_close(half[0, :, :, 2:6:2].mean(), half[0, :, :, 2:6:2].mean())  # finite
    assert torch.allclose(half[0, :, :, 3], 0.75 * x[0, :, :, 1] + 0.25 * x[0, :, :, 2], atol=1e-4)


def test_crop_boxes_respect_scale_ratio_and_bounds():
    g = torch.Generator().manual_seed(0)
    b = A.sample_crop_boxes(4000, (0.08, 1.0), 1.0, g, "cpu")
    cx, cy, w, h = b.unbind(1)
    area = w * h
    assert ((area >= 0.08 - 1e-6) & (area <= 1 + 1e-6)).all()
    assert ((w / h) >= 3 / 4 - 1e-5).all() and ((w / h) <= 4 / 3 + 1e-5).all()
    assert ((cx - w / 2) >= -1e-6).all() and ((cx + w / 2) <= 1 + 1e-6).all()
    assert ((cy - h / 2) >= -1e-6).all() and ((cy + h / 2) <= 1 + 1e-6).all()


@pytest.mark.parametrize("channels", [1, 3])
def test_batched_view_is_deterministic_bounded_and_varies_per_sample(channels):
    aug = copy.deepcopy(DEFAULTS["augment"])
    view = A.BatchedViewAugment(aug, 10, channels, view=1)
    x = imgs(n=64, c=channels, s=16).expand(64, channels, 16, 16).clone()
    x[:] = x[0]  # the same image 64 times: any variety comes from per-sample parameters
    a = view(x, torch.Generator().manual_seed(3))
    b = view(x, torch.Generator().manual_seed(3))
    assert a.shape == (64, channels, 10, 10) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 1
    distinct = {tuple(v.flatten()[:20].tolist()) for v in a}
    assert len(distinct) > 60


def test_normalize_uint8_and_float_agree():
    n = A.Normalize((0.5, 0.4, 0.3), (0.2, 0.2, 0.2))
    x = imgs()
    torch.testing.assert_close(n(x), n(x.float() / 255))
    assert torch.allclose(n(torch.full((1, 3, 1, 1), 0.5))[0, :, 0, 0], torch.tensor([0.0, 0.5, 1.0]), atol=1e-6)
