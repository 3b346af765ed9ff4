"""Every loader on a tiny fixture in its official layout, through the real cards."""
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from fixtures_data import (CXR_CLASSES, ISIC_CLASSES, make_chestxray14, make_hf_disk, make_imagefolder, make_isic,
                           make_medmnist, make_pneumonia, make_stl10)
from byol_bench.data import load_dataset
from byol_bench.data.card import DatasetCard
from byol_bench.data.catalog import get_card
from byol_bench.data.load import load_from_card
from byol_bench.errors import UserError


def assert_grouped(data):
    """No group (patient, lesion) appears in two splits."""
    seen = {}
    for split, groups in data.groups.items():
        for g in set(groups.tolist()):
            assert seen.setdefault(g, split) == split, f"group {g} in {seen[g]} and {split}"


# --- STL-10 -------------------------------------------------------------------------------

def test_stl10_reads_column_major_binaries_exactly(tmp_path: Path):
    truth = make_stl10(tmp_path, per_class=10)
    data = load_dataset("stl10", tmp_path)  # 96 px: no resampling, pixel-exact
    assert set(data.images) == {"train", "val", "test", "unlabeled"}
    assert np.array_equal(data.images["test"], truth["test_x"])
    assert np.array_equal(data.labels["test"], truth["test_y"])
    assert np.array_equal(data.images["unlabeled"], truth["unlabeled_x"])
    # train + val is a partition of the official train set, val stratified: one per class
    assert np.bincount(data.labels["val"], minlength=10).tolist() == [1] * 10
    merged = np.concatenate([data.images["train"], data.images["val"]])
    merged_y = np.concatenate([data.labels["train"], data.labels["val"]])
    order = np.lexsort(merged.reshape(len(merged), -1)[:, :8].T[::-1])
    order_t = np.lexsort(truth["train_x"].reshape(100, -1)[:, :8].T[::-1])
    assert np.array_equal(merged[order], truth["train_x"][order_t])
    assert np.array_equal(merged_y[order], truth["train_y"][order_t])
    assert data.pretrain_images().shape[0] == len(data.images["train"]) + 7


def test_stl10_other_size_and_without_unlabeled(tmp_path: Path):
    make_stl10(tmp_path, per_class=2)
    card = dataclasses.replace(get_card("stl10"), options={"unlabeled": False}, channels=1, mean=(0.4,), std=(0.3,))
    data = load_from_card(card, tmp_path, image_size=32)
    assert "unlabeled" not in data.images
    assert data.images["test"].shape == (10, 1, 32, 32)


# --- ISIC 2019 ----------------------------------------------------------------------------

def test_isic_one_hot_floats_lesion_groups_and_stray_files(tmp_path: Path):
    truth = make_isic(tmp_path)
    data = load_dataset("isic2019", tmp_path, image_size=24)
    assert data.classes == ISIC_CLASSES
    sizes = {k: len(v) for k, v in data.images.items()}
    assert sum(sizes.values()) == 36 and all(sizes.values())  # grey + CMYK JPEGs decoded, txt ignored
    assert sorted(np.concatenate(list(data.labels.values())).tolist()) == sorted(truth["labels"].tolist())
    assert_grouped(data)
    groups = np.concatenate(list(data.groups.values())).tolist()
    assert sum(g.startswith("image:") for g in groups) == sum(1 for les in truth["lesions"] if not les)
    again = load_dataset("isic", tmp_path, image_size=24)  # deterministic
    assert all(np.array_equal(data.images[k], again.images[k]) for k in data.images)


def test_isic_without_metadata_warns_and_splits_by_image(tmp_path: Path):
    make_isic(tmp_path, n=16, metadata=False)
    with pytest.warns(UserWarning, match="ISIC_2019_Training_Metadata.csv"):
        data = load_dataset("isic", tmp_path, image_size=16)
    assert sum(len(v) for v in data.labels.values()) == 16


# --- ChestX-ray14 -------------------------------------------------------------------------

@pytest.mark.parametrize("v2020", [False, True])
def test_chestxray14_official_test_patient_val_multi_hot(tmp_path: Path, v2020: bool):
    truth = make_chestxray14(tmp_path, patients=40, v2020=v2020)
    data = load_dataset("chestxray", tmp_path, image_size=16)
    assert data.classes == CXR_CLASSES
    assert data.images["train"].shape[1] == 1  # the RGBA PNG too
    assert len(data.images["test"]) == len(truth["test"])
    assert len(data.images["train"]) + len(data.images["val"]) == len(truth["train_val"])
    assert len(data.images["val"]) > 0
    want = np.zeros(14)
    for text in truth["findings"].values():
        for f in text.split("|"):
            if f != "No Finding":
                want[CXR_CLASSES.index(f)] += 1
    got = sum(y.sum(axis=0) for y in data.labels.values())
    assert data.labels["test"].dtype == np.float32 and np.array_equal(got, want)
    assert_grouped(data)


def test_chestxray14_kaggle_folders(tmp_path: Path):
    root = make_chestxray14(tmp_path, patients=8)["root"]
    (root / "images_001").mkdir()
    (root / "images").rename(root / "images_001" / "images")  # Kaggle: images_001/images/*.png
    data = load_dataset("chestxray14", tmp_path, image_size=16)
    assert sum(len(v) for v in data.images.values()) == 24


# --- pediatric pneumonia ------------------------------------------------------------------

def test_pneumonia_val_from_train_grouped_by_patient(tmp_path: Path):
    truth = make_pneumonia(tmp_path)
    data = load_dataset("pneumonia", tmp_path, image_size=16)
    assert data.classes == ["NORMAL", "PNEUMONIA"]
    assert len(data.images["test"]) == 8  # as shipped
    assert len(data.images["train"]) + len(data.images["val"]) == 28  # train/ + the 16-image val/ (here 4)
    assert len(data.images["val"]) > 0
    assert_grouped(data)
    assert set(np.concatenate(list(data.groups.values())).tolist()) == set(truth["patients"].values())


# --- MedMNIST -----------------------------------------------------------------------------

def test_medmnist_official_splits(tmp_path: Path):
    derma = make_medmnist(tmp_path, "dermamnist", 3, 7)
    chest = make_medmnist(tmp_path, "chestmnist", 1, 14, multilabel=True)
    make_medmnist(tmp_path, "pneumoniamnist", 1, 2)
    d = load_dataset("dermamnist", tmp_path)
    assert np.array_equal(d.images["val"], derma["val_images"].transpose(0, 3, 1, 2))
    assert np.array_equal(d.labels["test"], derma["test_labels"][:, 0].astype(np.int64))
    c = load_dataset("chestmnist", tmp_path)
    assert c.labels["train"].dtype == np.float32 and c.labels["train"].shape == (20, 14)
    assert np.array_equal(c.images["train"][:, 0], chest["train_images"])
    p = load_dataset("pneumoniamnist", tmp_path, image_size=32)
    assert p.images["train"].shape == (20, 1, 32, 32)


def test_medmnist_missing_array_is_named(tmp_path: Path):
    np.savez(tmp_path / "dermamnist.npz", train_images=np.zeros((1, 28, 28, 3), np.uint8))
    with pytest.raises(UserError, match="lacks array.*train_labels"):
        load_dataset("dermamnist", tmp_path)


# --- any ImageFolder ----------------------------------------------------------------------

def test_imagefolder_flat_tree(tmp_path: Path):
    make_imagefolder(tmp_path / "my_images")
    data = load_dataset("imagefolder-example", tmp_path, image_size=16)
    assert data.classes == ["cat", "dog", "fox"]
    assert sum(len(v) for v in data.images.values()) == 24  # README.md / notes.txt ignored
    assert np.bincount(data.labels["train"]).tolist() == [6, 6, 6]


def test_imagefolder_split_folders_need_official_marks(tmp_path: Path):
    for split in ("train", "test"):
        make_imagefolder(tmp_path / "my_images" / split, per_class=4)
    with pytest.raises(UserError, match="split folders.*official"):
        load_dataset("imagefolder-example", tmp_path, image_size=16)
    card = dataclasses.replace(get_card("imagefolder-example"), splits={"train": 0.75, "val": 0.25, "test": "official"})
    data = load_from_card(card, tmp_path, image_size=16)
    assert len(data.images["test"]) == 12 and len(data.images["val"]) == 3


def test_imagefolder_class_outside_card_classes(tmp_path: Path):
    make_imagefolder(tmp_path / "my_images", per_class=2)
    card = dataclasses.replace(get_card("imagefolder-example"), classes=("cat", "dog"))
    with pytest.raises(UserError, match="class folder.*fox"):
        load_from_card(card, tmp_path, image_size=16)


# --- Hugging Face ---------------------------------------------------------------------------

def test_hf_save_to_disk_folder(tmp_path: Path):
    make_hf_disk(tmp_path / "hfdata")
    card = DatasetCard(name="hf-demo", loader="hf", root="hfdata", image_size=16,
                       splits={"train": 0.75, "val": 0.25, "test": "official"})
    data = load_from_card(card, tmp_path)
    assert data.classes == ["ant", "bee", "cow"]
    assert {k: len(v) for k, v in data.images.items()} == {"train": 9, "val": 3, "test": 6}
    assert data.labels["test"].tolist() == [0, 1, 2, 0, 1, 2]


def test_hf_missing_folder_and_bad_column(tmp_path: Path):
    card = DatasetCard(name="hf-demo", loader="hf", root="nothere", splits={"train": 0.5, "val": 0.25, "test": 0.25})
    with pytest.raises(UserError, match="save_to_disk folder not found.*nothere"):
        load_from_card(card, tmp_path)
    make_hf_disk(tmp_path / "hfdata", n_train=3, n_test=3)
    card = dataclasses.replace(card, root="hfdata", options={"label_column": "y"},
                               splits={"train": 0.5, "val": 0.5, "test": "official"})
    with pytest.raises(UserError, match="no label column 'y'"):
        load_from_card(card, tmp_path)
