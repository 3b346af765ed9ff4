"""Decoding: colour modes, geometry, array conversions agree with PIL, corrupt files skipped."""
import io
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fixtures_data import photo, save, write_corrupt
from byol_bench.data.images import (CorruptImageWarning, array_to_channels, decode_files, decode_image,
                                 resize_array)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "CMYK", "P"])
@pytest.mark.parametrize("channels", [1, 3])
def test_every_mode_becomes_the_cards_channels(tmp_path: Path, mode: str, channels: int):
    fmt = "JPEG" if mode in ("CMYK", "L", "RGB") else "PNG"
    path = save(photo(1, 40, 30, mode), tmp_path / f"x.{fmt.lower()}", format=fmt)
    x = decode_image(path, 16, channels)
    assert x.shape == (channels, 16, 16) and x.dtype == np.uint8


def test_rgba_drops_alpha_and_grey_is_replicated(tmp_path: Path):
    rgb = photo(2, 20, 20)
    rgba = rgb.copy()
    rgba.putalpha(7)
    a = decode_image(save(rgba, tmp_path / "a.png"), 20, 3)
    b = decode_image(save(rgb, tmp_path / "b.png"), 20, 3)
    assert np.array_equal(a, b)
    g = decode_image(save(rgb.convert("L"), tmp_path / "g.png"), 20, 3)
    assert np.array_equal(g[0], g[1]) and np.array_equal(g[1], g[2])


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path: Path):
    arr = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    path = tmp_path / "x16.png"
    Image.fromarray(arr).save(path)
    x = decode_image(path, 64, 1)
    assert x.max() == 255 and x.min() == 0 and 120 < x.mean() < 135


def test_shorter_side_then_center_crop():
    arr = np.zeros((20, 40), np.uint8)
    arr[:, 10:30] = 255  # the central square is white, the side bands black
    x = decode_image(Image.fromarray(arr), 10, 1)
    # the filter's support reaches just past the crop at the edges, as resize-then-crop would
    assert x[..., 1:-1].min() == 255 and x.min() > 200


def test_array_conversions_match_pil():
    rgb = np.asarray(photo(3, 12, 12))
    ours = array_to_channels(rgb.transpose(2, 0, 1)[None], 1)[0, 0]
    pil = np.asarray(Image.fromarray(rgb).convert("L"))
    assert np.abs(ours.astype(int) - pil).max() <= 1
    assert array_to_channels(ours[None, None], 3).shape == (1, 3, 12, 12)
    up = resize_array(np.full((2, 1, 8, 8), 77, np.uint8), 16)
    assert up.shape == (2, 1, 16, 16) and (up == 77).all()


def test_corrupt_files_are_skipped_with_one_counting_warning(tmp_path: Path):
    good = [save(photo(i), tmp_path / f"g{i}.jpg") for i in range(3)]
    bad = [write_corrupt(tmp_path / "bad1.jpg"), tmp_path / "bad2.png"]
    bad[1].write_bytes(b"not a png at all")
    paths = [good[0], bad[0], good[1], bad[1], good[2]]
    with pytest.warns(CorruptImageWarning) as record:
        images, keep = decode_files("demo", paths, 8, 3, progress=False)
    assert keep.tolist() == [0, 2, 4] and images.shape == (3, 3, 8, 8)
    assert len(record) == 1
    message = str(record[0].message)
    assert "skipped 2 unreadable" in message and "bad1.jpg" in message and "bad2.png" in message


def test_no_warning_when_all_decode(tmp_path: Path):
    paths = [save(photo(i), tmp_path / f"g{i}.png") for i in range(2)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        images, keep = decode_files("demo", paths, 8, 1, progress=False)
    assert len(keep) == 2


def test_bytes_source():
    buf = io.BytesIO()
    photo(4).save(buf, "PNG")
    assert decode_image(buf.getvalue(), 8, 3).shape == (3, 8, 8)
