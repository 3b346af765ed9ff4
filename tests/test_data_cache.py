"""The decoded cache: miss, hit, rebuild on changed files, new key on a changed card."""
import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest

import byol_bench.data.cache as cache_mod
from fixtures_data import make_isic, make_medmnist, write_corrupt
from byol_bench.data import load_dataset
from byol_bench.data.catalog import get_card
from byol_bench.data.load import load_from_card
from byol_bench.data.images import CorruptImageWarning
from byol_bench.errors import UserError


@pytest.fixture
def builds(monkeypatch):
    """Count cache builds (writes)."""
    count = []
    real = cache_mod.write_cache

    def counting(*args, **kwargs):
        count.append(args[0])
        return real(*args, **kwargs)
    monkeypatch.setattr(cache_mod, "write_cache", counting)
    return count


def same(a, b):
    assert a.classes == b.classes and set(a.images) == set(b.images) and set(a.groups) == set(b.groups)
    for k in a.images:
        assert np.array_equal(a.images[k], b.images[k]) and np.array_equal(a.labels[k], b.labels[k])
    for k in a.groups:
        assert np.array_equal(a.groups[k], b.groups[k])


def test_miss_then_hit_then_rebuild_on_changed_files(tmp_path: Path, builds):
    truth = make_isic(tmp_path / "data", n=12)
    cache = tmp_path / "cache"
    first = load_dataset("isic", tmp_path / "data", 16, cache)
    assert len(builds) == 1
    folder = builds[0]
    assert folder.parent == cache and folder.name.startswith("isic-16px-")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["meta.json"] + [f"{s}.{k}.npy" for s in ("train", "val", "test") for k in ("images", "labels", "groups")])

    hit = load_dataset("isic2019", tmp_path / "data", 16, cache)  # alias: same card, same cache
    assert len(builds) == 1
    same(first, hit)

    image = truth["root"] / "ISIC_2019_Training_Input" / f"{truth['names'][0]}.jpg"
    st = image.stat()
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # same name and size, newer
    load_dataset("isic", tmp_path / "data", 16, cache)
    assert len(builds) == 2 and builds[1] == folder  # rebuilt in place
    (truth["root"] / "new-notes.txt").write_text("x")  # any new file under the root counts
    load_dataset("isic", tmp_path / "data", 16, cache)
    assert len(builds) == 3
    load_dataset("isic", tmp_path / "data", 16, cache)
    assert len(builds) == 3
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temporary folders left


def test_card_or_size_change_gives_another_cache(tmp_path: Path, builds):
    make_medmnist(tmp_path, "pneumoniamnist", 1, 2)
    card = get_card("pneumoniamnist")
    load_from_card(card, tmp_path, None, tmp_path / "cache")
    load_from_card(card, tmp_path, 32, tmp_path / "cache")
    load_from_card(dataclasses.replace(card, classes=("no", "yes")), tmp_path, None, tmp_path / "cache")
    assert len(builds) == 3 and len(set(builds)) == 3
    load_from_card(card, tmp_path, 32, tmp_path / "cache")
    assert len(builds) == 3


def test_mmap_reads_without_copying(tmp_path: Path):
    make_medmnist(tmp_path, "dermamnist", 3, 7)
    built = load_dataset("dermamnist", tmp_path, cache_dir=tmp_path / "cache", mmap=True)
    hit = load_dataset("dermamnist", tmp_path, cache_dir=tmp_path / "cache", mmap=True)
    for data in (built, hit):
        assert isinstance(data.images["train"], np.memmap) and not data.images["train"].flags.writeable
    plain = load_dataset("dermamnist", tmp_path, cache_dir=tmp_path / "cache")
    assert plain.images["train"].flags.writeable and not isinstance(plain.images["train"], np.memmap)
    same(hit, plain)


def test_incomplete_cache_is_rebuilt(tmp_path: Path, builds):
    make_medmnist(tmp_path, "dermamnist", 3, 7)
    load_dataset("dermamnist", tmp_path, cache_dir=tmp_path / "cache")
    (builds[0] / "val.images.npy").unlink()
    load_dataset("dermamnist", tmp_path, cache_dir=tmp_path / "cache")
    meta = json.loads((builds[0] / "meta.json").read_text())
    meta["fingerprint"] = "something else"
    (builds[0] / "meta.json").write_text(json.dumps(meta))
    load_dataset("dermamnist", tmp_path, cache_dir=tmp_path / "cache")
    assert len(builds) == 3


def test_skipped_files_are_warned_again_on_a_hit(tmp_path: Path):
    truth = make_isic(tmp_path, n=10)
    write_corrupt(truth["root"] / "ISIC_2019_Training_Input" / f"{truth['names'][1]}.jpg")
    with pytest.warns(CorruptImageWarning, match="skipped 1"):
        load_dataset("isic", tmp_path, 16, tmp_path / "cache")
    with pytest.warns(CorruptImageWarning, match=f"built without 1 unreadable.*{truth['names'][1]}"):
        data = load_dataset("isic", tmp_path, 16, tmp_path / "cache")
    assert sum(len(v) for v in data.images.values()) == 9


def test_missing_data_with_a_cache_dir(tmp_path: Path):
    with pytest.raises(UserError, match="not found"):
        load_dataset("isic", tmp_path, 16, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_digits_cache_ignores_the_data_root(tmp_path: Path, builds):
    (tmp_path / "data").mkdir()
    load_dataset("digits", tmp_path / "data", cache_dir=tmp_path / "cache")
    (tmp_path / "data" / "other-dataset.bin").write_bytes(b"x")  # unrelated files do not invalidate it
    data = load_dataset("digits", tmp_path / "data", cache_dir=tmp_path / "cache")
    assert len(builds) == 1 and sum(len(v) for v in data.images.values()) == 1797
