"""Tiny datasets in each official on-disk layout, generated with numpy and PIL.

Each `make_*` writes under a data root (pytest's tmp_path) exactly what the official archive
unpacks to, including the quirks loaders must survive, and returns what a test needs to check
the result. Nothing is downloaded.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

STL_SIDE = 96


def photo(seed: int, width: int = 48, height: int = 40, mode: str = "RGB") -> Image.Image:
    """A small deterministic picture: smooth gradients plus noise (compresses like a photo)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / max(width - 1, 1), y * 255 / max(height - 1, 1),
                     np.full_like(x, (seed * 37) % 256, dtype=float)], axis=-1)
    arr = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB").convert(mode)


def save(im: Image.Image, path: Path, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, **kwargs)
    return path


def write_corrupt(path: Path) -> Path:
    """A file named like an image whose data is cut short (a broken download)."""
    buf = io.BytesIO()
    photo(999).save(buf, "JPEG")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue()[:200])
    return path


# --- STL-10 binary -------------------------------------------------------------------------

def make_stl10(data_root: Path, per_class: int = 3, n_test: int = 10, n_unlabeled: int = 7) -> dict:
    """stl10_binary/*.bin: images stored column-major per channel, labels 1..10."""
    rng = np.random.default_rng(0)
    root = data_root / "stl10_binary"
    root.mkdir(parents=True)
    out = {}
    for split, n in (("train", per_class * 10), ("test", n_test), ("unlabeled", n_unlabeled)):
        x = rng.integers(0, 256, (n, 3, STL_SIDE, STL_SIDE), dtype=np.uint8)  # row-major truth
        x.transpose(0, 1, 3, 2).tofile(root / f"{split}_X.bin")  # the format's column-major order
        out[f"{split}_x"] = x
        if split != "unlabeled":
            y = (np.arange(n) % 10 + 1).astype(np.uint8)
            y.tofile(root / f"{split}_y.bin")
            out[f"{split}_y"] = y.astype(np.int64) - 1
    (root / "class_names.txt").write_text("airplane\nbird\ncar\ncat\ndeer\ndog\nhorse\nmonkey\nship\ntruck\n")
    (root / "fold_indices.txt").write_text(" ".join(map(str, range(per_class * 10))) + "\n")
    return out


# --- ISIC 2019 -----------------------------------------------------------------------------

ISIC_CLASSES = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC"]


def make_isic(data_root: Path, n: int = 36, metadata: bool = True) -> dict:
    """isic2019/: JPEGs (colour, one grey, one CMYK) + LICENSE/ATTRIBUTION, one-hot CSV as 1.0/0.0,
    and metadata in which images 0, 7, 14, ... have no lesion_id."""
    root = data_root / "isic2019"
    images = root / "ISIC_2019_Training_Input"
    images.mkdir(parents=True)
    (images / "LICENSE.txt").write_text("CC-BY-NC\n")
    (images / "ATTRIBUTION.txt").write_text("ISIC Archive\n")
    names, labels, lesions = [], [], []
    for i in range(n):
        name = f"ISIC_{i:07d}" + ("_downsampled" if i % 11 == 5 else "")
        mode = "L" if i == 3 else "CMYK" if i == 4 else "RGB"
        save(photo(i, 60 + (i % 3) * 10, 45, mode), images / f"{name}.jpg", quality=90)
        names.append(name)
        lesion = "" if i % 7 == 0 else f"IL_{i // 3:07d}"  # three images per lesion
        lesions.append(lesion)
        labels.append((i // 3) % 8 if lesion else i % 8)  # one diagnosis per lesion
    rows = ["image," + ",".join(ISIC_CLASSES) + ",UNK"]
    for name, y in zip(names, labels):
        rows.append(name + "," + ",".join("1.0" if k == y else "0.0" for k in range(8)) + ",0.0")
    (root / "ISIC_2019_Training_GroundTruth.csv").write_text("\n".join(rows) + "\n")
    if metadata:
        meta = ["image,age_approx,anatom_site_general,lesion_id,sex"]
        meta += [f"{name},55.0,anterior torso,{les},male" for name, les in zip(names, lesions)]
        (root / "ISIC_2019_Training_Metadata.csv").write_text("\n".join(meta) + "\n")
    return {"root": root, "names": names, "labels": np.array(labels), "lesions": lesions}


# --- NIH ChestX-ray14 ----------------------------------------------------------------------

CXR_CLASSES = ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
               "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia"]
# The real header: the bracketed names hold an unquoted comma, so each spans two fields.
CXR_HEADER = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
              "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],")


def make_chestxray14(data_root: Path, patients: int = 12, per_patient: int = 3, v2020: bool = False) -> dict:
    """chestxray14/: Data_Entry_2017(_v2020).csv, images/*.png (one RGBA), official list files."""
    root = data_root / "chestxray14"
    rng = np.random.default_rng(1)
    rows, findings, train_val, test = [CXR_HEADER], {}, [], []
    for p in range(1, patients + 1):
        for k in range(per_patient):
            name = f"{p:08d}_{k:03d}.png"
            picks = rng.choice(14, size=rng.integers(0, 3), replace=False)
            text = "|".join(CXR_CLASSES[j] for j in sorted(picks)) or "No Finding"
            findings[name] = text
            rows.append(f"{name},{text},{k},{p},{40 + p},M,PA,2500,2048,0.143,0.143,")
            mode = "RGBA" if (p, k) == (2, 1) else "L"
            save(photo(p * 10 + k, 64, 64, mode), root / "images" / name)
            (test if p % 4 == 0 else train_val).append(name)
    csv_name = "Data_Entry_2017_v2020.csv" if v2020 else "Data_Entry_2017.csv"
    (root / csv_name).write_text("\n".join(rows) + "\n")
    (root / "train_val_list.txt").write_text("\n".join(train_val) + "\n")
    (root / "test_list.txt").write_text("\n".join(test) + "\n")
    return {"root": root, "findings": findings, "train_val": train_val, "test": test}


# --- pediatric pneumonia (Kaggle layout) ---------------------------------------------------

def make_pneumonia(data_root: Path) -> dict:
    """chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg with the real naming schemes
    (IM-0115-0001, NORMAL2-IM-1427-0001, person1_bacteria_1), two images per patient, plus the
    Kaggle archive's junk: a nested chest_xray/ copy, __MACOSX, .DS_Store."""
    root = data_root / "chest_xray"
    patients, seed = {}, 0
    for split, base, n in (("train", 1000, 6), ("val", 2000, 1), ("test", 3000, 2)):
        for i in range(n):
            normal = ("NORMAL2-" if i % 2 else "") + f"IM-{base + i:04d}"
            person = f"person{base + i}"
            for k in range(2):
                for cls, pid, name, mode in (("NORMAL", normal, f"{normal}-{k + 1:04d}.jpeg", "L"),
                                             ("PNEUMONIA", person, f"{person}_{('bacteria', 'virus')[k]}_{k + 1}.jpeg", "RGB")):
                    seed += 1
                    save(photo(seed, 50, 40, mode), root / split / cls / name)
                    patients[name] = pid
    save(photo(0), root / "chest_xray" / "train" / "NORMAL" / "IM-9999-0001.jpeg")  # nested duplicate tree
    (root / "__MACOSX").mkdir()
    (root / "__MACOSX" / "._IM-0001.jpeg").write_bytes(b"\x00junk")
    (root / "train" / "NORMAL" / ".DS_Store").write_bytes(b"\x00junk")
    return {"root": root, "patients": patients}


# --- MedMNIST -------------------------------------------------------------------------------

def make_medmnist(data_root: Path, name: str, channels: int, n_classes: int, multilabel: bool = False,
                  sizes: tuple[int, int, int] = (20, 6, 8), side: int = 28) -> dict:
    """<name>.npz with {train,val,test}_{images,labels} as the medmnist package saves them."""
    rng = np.random.default_rng(2)
    arrays = {}
    for split, n in zip(("train", "val", "test"), sizes):
        shape = (n, side, side) if channels == 1 else (n, side, side, 3)
        arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        if multilabel:
            arrays[f"{split}_labels"] = rng.integers(0, 2, (n, n_classes)).astype(np.uint8)
        else:
            arrays[f"{split}_labels"] = (np.arange(n) % n_classes).reshape(n, 1).astype(np.uint8)
    np.savez_compressed(data_root / f"{name}.npz", **arrays)
    return arrays


# --- any ImageFolder ------------------------------------------------------------------------

def make_imagefolder(root: Path, classes=("cat", "dog", "fox"), per_class: int = 8) -> dict:
    """<root>/<class>/*.{png,jpg}, mixed sizes and modes, plus a README that is not an image."""
    files = {}
    for c_idx, cls in enumerate(classes):
        for i in range(per_class):
            ext, mode = [(".png", "RGB"), (".jpg", "RGB"), (".png", "RGBA"), (".JPG", "L")][i % 4]
            path = save(photo(c_idx * 100 + i, 30 + i, 36, mode), root / cls / f"{cls}_{i}{ext}")
            files[path] = c_idx
    (root / "README.md").write_text("not an image\n")
    (root / classes[0] / "notes.txt").write_text("not an image\n")
    return files


# --- Hugging Face save_to_disk ---------------------------------------------------------------

def make_hf_disk(path: Path, n_train: int = 12, n_test: int = 6) -> None:
    """A DatasetDict (image, label as ClassLabel) written with save_to_disk."""
    import datasets as hf

    features = hf.Features({"image": hf.Image(), "label": hf.ClassLabel(names=["ant", "bee", "cow"])})
    parts = {}
    for split, n in (("train", n_train), ("test", n_test)):
        parts[split] = hf.Dataset.from_dict(
            {"image": [photo(i, 20, 24) for i in range(n)], "label": [i % 3 for i in range(n)]},
            features=features)
    hf.DatasetDict(parts).save_to_disk(str(path))


# --- MNIST-family IDX files ----------------------------------------------------------------

def write_idx(path: Path, array: np.ndarray, gz: bool = True) -> Path:
    """An IDX file: magic (0, 0, 0x08 ubyte, ndim), one big-endian int32 per dim, the bytes."""
    import gzip
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    blob = header + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(blob))
    else:
        path.write_bytes(blob)
    return path


def make_idx(root: Path, n_train: int = 40, n_test: int = 10, side: int = 28, gz: bool = True) -> dict:
    """{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] under `root` (MNIST's official names),
    labels 0..9 cycling, images random."""
    rng = np.random.default_rng(0)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, (n, side, side), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        out[f"{prefix}_images"] = write_idx(root / f"{prefix}-images-idx3-ubyte", x, gz)
        out[f"{prefix}_labels"] = write_idx(root / f"{prefix}-labels-idx1-ubyte", y, gz)
        out[f"{prefix}_x"], out[f"{prefix}_y"] = x, y.astype(np.int64)
    return out
