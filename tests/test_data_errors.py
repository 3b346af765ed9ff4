"""Bad input: missing data, bad CSVs, absent and corrupt images. Messages name the file."""
from pathlib import Path

import numpy as np
import pytest

from fixtures_data import make_chestxray14, make_imagefolder, make_isic, make_pneumonia, make_stl10, write_corrupt
from byol_bench.data import load_dataset
from byol_bench.data.images import CorruptImageWarning
from byol_bench.errors import UserError


@pytest.mark.parametrize("name, expected, source", [
    ("stl10", "stl10_binary", "cs.stanford.edu/~acoates/stl10"),
    ("isic", "isic2019", "challenge.isic-archive.com"),
    ("chestxray14", "chestxray14", "nihcc.app.box.com"),
    ("pneumonia", "chest_xray", "data.mendeley.com"),
    ("dermamnist", "dermamnist.npz", "zenodo.org"),
])
def test_missing_dataset_names_path_source_and_unpacking(tmp_path: Path, name, expected, source):
    with pytest.raises(UserError) as err:
        load_dataset(name, tmp_path / "data")
    message = str(err.value)
    assert str(tmp_path / "data" / expected) in message
    assert source in message and "how to get it" in message
    assert ("unzip" in message or "tar x" in message or "no unpacking" in message)


def test_missing_dataset_mentions_download_where_possible(tmp_path: Path):
    with pytest.raises(UserError, match="--download"):
        load_dataset("stl10", tmp_path)


def test_missing_file_inside_a_dataset(tmp_path: Path):
    make_stl10(tmp_path, per_class=1)
    (tmp_path / "stl10_binary" / "test_y.bin").unlink()
    with pytest.raises(UserError, match=r"not found: .*stl10_binary/test_y\.bin"):
        load_dataset("stl10", tmp_path, image_size=16)


def test_truncated_stl10_binary(tmp_path: Path):
    make_stl10(tmp_path, per_class=1)
    path = tmp_path / "stl10_binary" / "train_X.bin"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(UserError, match="not a multiple of 27648.*train_X.bin"):
        load_dataset("stl10", tmp_path, image_size=16)


def test_isic_csv_missing_column(tmp_path: Path):
    root = make_isic(tmp_path, n=8)["root"]
    csv = root / "ISIC_2019_Training_GroundTruth.csv"
    csv.write_text(csv.read_text().replace(",SCC,", ",XYZ,"))
    with pytest.raises(UserError, match=r"ISIC_2019_Training_GroundTruth\.csv has no column\(s\) 'SCC'"):
        load_dataset("isic", tmp_path, image_size=16)


def test_isic_metadata_missing_lesion_column(tmp_path: Path):
    root = make_isic(tmp_path, n=8)["root"]
    meta = root / "ISIC_2019_Training_Metadata.csv"
    meta.write_text(meta.read_text().replace("lesion_id", "lesion"))
    with pytest.raises(UserError, match="Metadata.csv has no column.*lesion_id"):
        load_dataset("isic", tmp_path, image_size=16)


def test_isic_listed_image_absent(tmp_path: Path):
    truth = make_isic(tmp_path, n=8)
    (truth["root"] / "ISIC_2019_Training_Input" / f"{truth['names'][2]}.jpg").unlink()
    with pytest.raises(UserError) as err:
        load_dataset("isic", tmp_path, image_size=16)
    assert "1 image(s) listed in" in str(err.value) and truth["names"][2] in str(err.value)
    assert "ISIC_2019_Training_GroundTruth.csv" in str(err.value)


def test_isic_row_without_a_positive_class(tmp_path: Path):
    root = make_isic(tmp_path, n=8)["root"]
    csv = root / "ISIC_2019_Training_GroundTruth.csv"
    lines = csv.read_text().splitlines()
    lines[3] = lines[3].split(",")[0] + ",0.0" * 8 + ",1.0"  # an UNK row
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match="line 4.*0 positive classes"):
        load_dataset("isic", tmp_path, image_size=16)


def test_corrupt_images_skipped_and_counted(tmp_path: Path):
    truth = make_isic(tmp_path, n=12)
    folder = truth["root"] / "ISIC_2019_Training_Input"
    for name in truth["names"][5:7]:
        write_corrupt(folder / f"{name}.jpg")
    with pytest.warns(CorruptImageWarning, match=r"isic: skipped 2 unreadable image file\(s\)") as rec:
        data = load_dataset("isic", tmp_path, image_size=16)
    assert truth["names"][5] in str(rec[0].message)
    assert sum(len(v) for v in data.images.values()) == 10


def test_chestxray14_missing_lists_and_unknown_finding(tmp_path: Path):
    root = make_chestxray14(tmp_path, patients=4)["root"]
    (root / "test_list.txt").unlink()
    with pytest.raises(UserError, match=r"not found: .*chestxray14/test_list\.txt"):
        load_dataset("chestxray14", tmp_path, image_size=16)
    (root / "test_list.txt").write_text("00000004_000.png\n")
    csv = root / "Data_Entry_2017.csv"
    csv.write_text(csv.read_text().replace("00000001_000.png,", "00000001_000.png,Cardiomegally|", 1))
    with pytest.raises(UserError, match="Data_Entry_2017.csv line 2: unknown finding 'Cardiomegally'"):
        load_dataset("chestxray14", tmp_path, image_size=16)


def test_chestxray14_no_csv(tmp_path: Path):
    root = make_chestxray14(tmp_path, patients=2)["root"]
    (root / "Data_Entry_2017.csv").unlink()
    with pytest.raises(UserError, match="label CSV .*Data_Entry_2017_v2020.csv or Data_Entry_2017.csv"):
        load_dataset("chestxray14", tmp_path, image_size=16)


def test_chestxray14_listed_image_absent(tmp_path: Path):
    root = make_chestxray14(tmp_path, patients=4)["root"]
    (root / "images" / "00000001_001.png").unlink()
    with pytest.raises(UserError, match="1 image.*train_val_list.txt.*00000001_001.png"):
        load_dataset("chestxray14", tmp_path, image_size=16)


def test_pneumonia_missing_test_folder(tmp_path: Path):
    root = make_pneumonia(tmp_path)["root"]
    import shutil
    shutil.rmtree(root / "test")
    with pytest.raises(UserError, match=r"test split folder not found: .*chest_xray/test"):
        load_dataset("pneumonia", tmp_path, image_size=16)


def test_empty_imagefolder(tmp_path: Path):
    (tmp_path / "my_images" / "cat").mkdir(parents=True)
    with pytest.raises(UserError, match="no images"):
        load_dataset("imagefolder-example", tmp_path, image_size=16)


def test_corrupt_image_in_imagefolder(tmp_path: Path):
    make_imagefolder(tmp_path / "my_images", per_class=4)
    write_corrupt(tmp_path / "my_images" / "dog" / "broken.jpg")
    with pytest.warns(CorruptImageWarning, match="skipped 1 .*broken.jpg"):
        data = load_dataset("imagefolder-example", tmp_path, image_size=16)
    assert sum(len(v) for v in data.images.values()) == 12
    assert np.concatenate(list(data.labels.values())).max() == 2


def test_one_warning_for_corrupt_files_in_several_splits(tmp_path: Path):
    root = make_pneumonia(tmp_path)["root"]
    write_corrupt(root / "train" / "NORMAL" / "IM-1000-0001.jpeg")
    write_corrupt(root / "test" / "PNEUMONIA" / "person3000_bacteria_1.jpeg")
    with pytest.warns(CorruptImageWarning) as rec:
        data = load_dataset("pneumonia", tmp_path, image_size=16)
    corrupt = [w for w in rec if issubclass(w.category, CorruptImageWarning)]
    assert len(corrupt) == 1 and "skipped 2 unreadable" in str(corrupt[0].message)
    assert len(data.images["test"]) == 7


def test_bad_group_pattern(tmp_path: Path):
    import dataclasses
    from byol_bench.data.catalog import get_card
    from byol_bench.data.load import load_from_card
    make_imagefolder(tmp_path / "my_images", per_class=2)
    card = dataclasses.replace(get_card("imagefolder-example"), options={"group_pattern": "person(\\d+"})
    with pytest.raises(UserError, match="group_pattern .* is not a regular expression"):
        load_from_card(card, tmp_path, image_size=16)
