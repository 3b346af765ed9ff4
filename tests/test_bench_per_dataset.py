"""One tiny benchmark run per real dataset format, on fixtures in the official layouts:
the loaders, the decoded cache, pretraining, the protocols (multi-class and multi-label) and
the leaderboard, through the CLI exactly as a user calls it."""
import json
from pathlib import Path

import numpy as np
import pytest

import fixtures_data as fx
from byol_bench.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--config", str(ROOT / "configs/smoke.yaml"), "--methods", "byol", "--seeds", "1",
        "--set", "backbone.width=4", "--set", "byol.proj_hidden=16", "--set", "byol.pred_hidden=16",
        "--set", "byol.proj_dim=8", "--set", "data.image_size=16", "--set", "pretrain.batch_size=8"]

CASES = {
    "stl10": (lambda root: fx.make_stl10(root, per_class=10, n_test=10, n_unlabeled=7), "accuracy"),
    "isic": (lambda root: fx.make_isic(root), "balanced_accuracy"),
    "chestxray14": (lambda root: fx.make_chestxray14(root, patients=30), "mean_auroc"),
    "pneumonia": (lambda root: fx.make_pneumonia(root), "balanced_accuracy"),
    "dermamnist": (lambda root: fx.make_medmnist(root, "dermamnist", 3, 7), "balanced_accuracy"),
    "chestmnist": (lambda root: fx.make_medmnist(root, "chestmnist", 1, 14, multilabel=True), "mean_auroc"),
}


@pytest.mark.parametrize("dataset", sorted(CASES))
def test_tiny_benchmark_run(tmp_path, dataset):
    make, metric = CASES[dataset]
    data_root = tmp_path / "data"
    data_root.mkdir()
    make(data_root)
    results = tmp_path / "results"
    code = main([*TINY, "--datasets", dataset, "--data-root", str(data_root), "--results-dir", str(results)])
    assert code == 0
    folders = [p for p in (results / "runs").iterdir() if p.name.isdigit()]
    assert len(folders) == 1
    run = json.loads((folders[0] / "run.json").read_text())
    assert run["status"] == "COMPLETED", run.get("fail_trace")
    for protocol in ("linear", "knn"):
        value = run["result"][f"{protocol}/{metric}"]
        assert np.isnan(value) or 0.0 <= value <= 1.0
    assert any(p.is_dir() for p in (results / "cache").iterdir())   # decoded once, cached
    assert dataset in (results / "LEADERBOARD.md").read_text()


@pytest.mark.parametrize("kind", ["imagefolder", "hf"])
def test_tiny_benchmark_run_on_a_user_card(tmp_path, kind):
    """A user's own dataset is a card only: here a copy of the example card pointed at a fixture
    (an image folder, or a Hugging Face save_to_disk folder), registered as datasets/ would."""
    import dataclasses

    from byol_bench.data import DATASETS

    data_root = tmp_path / "data"
    name = f"my-{kind}"
    if kind == "imagefolder":
        fx.make_imagefolder(data_root / "pets", per_class=10)
        card = dataclasses.replace(DATASETS.get("imagefolder-example"), name=name, root="pets", image_size=16)
    else:
        fx.make_hf_disk(data_root / "hfdisk", n_train=30, n_test=9)
        card = dataclasses.replace(DATASETS.get("hf-example"), name=name, root="hfdisk", image_size=16,
                                   options={"image_column": "image", "label_column": "label"})
    if name not in DATASETS:
        DATASETS.add(name, card)
    results = tmp_path / "results"
    assert main([*TINY, "--datasets", name, "--data-root", str(data_root), "--results-dir", str(results)]) == 0
    run = json.loads(next((results / "runs").glob("*/run.json")).read_text())
    assert run["status"] == "COMPLETED", run.get("fail_trace")
    assert 0.0 <= run["result"]["linear/accuracy"] <= 1.0
