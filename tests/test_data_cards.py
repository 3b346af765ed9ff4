"""The shipped cards, card validation, and the datasets/ vs Hugging Face `datasets` trap."""
import subprocess
import sys
from pathlib import Path

import pytest

from byol_bench.data.catalog import CARDS_DIR, DATASETS, LOADERS, get_card
from byol_bench.data.card import DatasetCard
from byol_bench.errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[1]

EXPECTED = ["chestmnist", "chestxray14", "dermamnist", "digits", "hf-example", "imagefolder-example",
            "isic", "pneumonia", "pneumoniamnist", "stl10"]


def test_every_card_loads_and_names_a_registered_loader():
    assert set(EXPECTED) <= set(DATASETS.names())
    for name in EXPECTED:
        card = get_card(name)
        assert card.loader in LOADERS
        assert len(card.mean) == len(card.std) == card.channels
        assert card.download.get("instructions"), f"{name}: no download instructions"


def test_aliases_resolve():
    assert get_card("isic2019").name == "isic"
    assert get_card("chestxray").name == "chestxray14"


def test_card_sizes_and_metrics():
    sizes = {n: get_card(n).image_size for n in ("stl10", "isic", "chestxray14", "pneumonia", "dermamnist")}
    assert sizes == {"stl10": 96, "isic": 224, "chestxray14": 224, "pneumonia": 224, "dermamnist": 28}
    assert get_card("isic").primary_metric == "balanced_accuracy"
    assert get_card("chestxray14").task == "multilabel"
    assert get_card("chestxray14").primary_metric == "mean_auroc"
    assert len(get_card("chestxray14").classes) == 14 and len(get_card("isic").classes) == 8


def test_download_entries_carry_checksums():
    for name in EXPECTED:
        for entry in get_card(name).download.get("files", []):
            assert entry["url"].startswith(("http://", "https://"))
            assert entry.get("md5") or entry.get("sha256"), name


def test_datasets_folder_holds_only_yaml():
    assert CARDS_DIR == REPO_ROOT / "datasets"  # in a checkout: byol_bench.shipped("cards")
    assert not [p.name for p in CARDS_DIR.iterdir() if p.suffix not in (".yaml", ".yml")]


def test_import_datasets_from_repo_root_is_hugging_face():
    code = "import datasets; print(datasets.__file__); assert callable(datasets.load_dataset)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "site-packages" in out.stdout and str(CARDS_DIR) not in out.stdout


@pytest.mark.parametrize("text, problem", [
    ("name: x\nloader: imagefolder\nsplitz: {}\n", "unknown key(s) splitz"),
    ("name: x\nloader: imagefolder\nsplits: {train: 0.5, val: 0.1, test: 0.1}\n", "must sum to 1"),
    ("name: x\nloader: imagefolder\nsplits: {train: 0.9, val: 0.1, test: 0, dev: 0}\n", "unknown split(s) dev"),
    ("name: x\nloader: imagefolder\nsplits: {train: 0.9, val: 0.1, test: shipped}\n", "or 'official'"),
    ("name: x\nloader: imagefolder\nsplits: {train: 0.9, val: 0.1}\n", "must name train, val and test"),
    ("name: x\nloader: imagefolder\nchannels: 1\n", "mean and std need 1 values"),
    ("name: x\nloader: imagefolder\ntask: regression\n", "multiclass or multilabel"),
    ("name: x\nloader: imagefolder\nsources: [HAM10000, 7]\n", "sources must be a list of names"),
    ("- a list\n", "expected a mapping"),
])
def test_bad_cards_are_user_errors(tmp_path: Path, text: str, problem: str):
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        DatasetCard.from_yaml(path)


def test_unknown_loader_option_is_a_user_error(tmp_path: Path):
    from byol_bench.data.load import load_from_card
    card = DatasetCard(name="x", loader="imagefolder", root="x", options={"group_patern": "a"})
    (tmp_path / "x").mkdir()
    with pytest.raises(UserError, match="unknown option.*group_patern.*valid options"):
        load_from_card(card, tmp_path)


def test_cards_name_their_image_sources_and_overlaps_are_found():
    """The overlaps DESIGN.md names: ISIC 2019 holds HAM10000 (= DermaMNIST); the MedMNIST cards
    hold their full-size parents' images."""
    assert get_card("isic").shared_sources(get_card("dermamnist")) == ["HAM10000"]
    assert get_card("dermamnist").shared_sources(get_card("isic2019")) == ["HAM10000"]
    assert get_card("chestxray14").shared_sources(get_card("chestmnist")) == ["NIH-ChestXray14"]
    assert get_card("pneumonia").shared_sources(get_card("pneumoniamnist")) == ["Guangzhou-pediatric-CXR"]
    assert get_card("chestxray14").shared_sources(get_card("pneumonia")) == []
    assert get_card("stl10").shared_sources(get_card("digits")) == []
    for name in EXPECTED:
        if name != "imagefolder-example":  # the user's own images: theirs to name
            assert get_card(name).sources, f"{name}: no image sources"
    unnamed = DatasetCard(name="x", loader="imagefolder")
    assert unnamed.shared_sources(get_card("isic")) == [] == get_card("isic").shared_sources(unnamed)
