"""configs/garg-jain-code.yaml: the dry run lists its grid, a tiny version of it runs to the end
on the STL10 fixture in its official binary layout, and the resolved config on disk carries
every recipe value (tests/test_leaderboard.py checks that two recipes in one store stay apart)."""
import json
from pathlib import Path

import yaml

from fixtures_data import make_stl10
from byol_bench.cli import main

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs/garg-jain-code.yaml"
# Tiny sizes only; every other value is the recipe's. mixed_precision: one Accelerate setting
# per process (the other tests use "no"), and bf16 buys nothing on a CPU.
TINY = {"pretrain.epochs": 1, "pretrain.batch_size": 8, "data.image_size": 8, "data.num_workers": 0,
        "byol.proj_hidden": 16, "byol.proj_dim": 8, "byol.pred_hidden": 16, "pretrain.mixed_precision": "no",
        "eval.batch_size": 64, "eval.finetune_mlp.epochs": 2, "eval.finetune_mlp.batch_size": 16,
        "eval.finetune_mlp.hidden": 16, "eval.linear.max_iter": 10}


def flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_dry_run_lists_the_grid(tmp_path, capsys):
    assert main(["--config", str(CONFIG), "--dry-run", "--results-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "stl10 [garg-jain-code] / byol / seed 0" in out and "stl10 [garg-jain-code] / byol-ccsl / seed 4" in out
    assert "65 runs in the grid: 65 to pretrain and evaluate" in out        # 13 methods x 5 seeds
    assert not (tmp_path / "runs").exists()


def test_tiny_run_completes_and_its_config_holds_every_recipe_value(tmp_path, capsys):
    make_stl10(tmp_path / "data", per_class=10, n_test=10, n_unlabeled=16)
    sets = [arg for k, v in TINY.items() for arg in ("--set", f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}")]
    results = tmp_path / "results"
    code = main(["--config", str(CONFIG), "--methods", "byol", "--seeds", "1", *sets,
                 "--data-root", str(tmp_path / "data"), "--results-dir", str(results)])
    assert code == 0
    assert "1 completed, 0 failed" in capsys.readouterr().out
    (folder,) = [p for p in (results / "runs").iterdir() if p.name.isdigit()]
    config = json.loads((folder / "config.json").read_text())
    run = json.loads((folder / "run.json").read_text())
    assert run["status"] == "COMPLETED"
    assert {"finetune-mlp/accuracy", "linear/accuracy"} <= set(run["result"])
    recipe = yaml.safe_load(CONFIG.read_text())
    assert config["recipe"] == "garg-jain-code" and config["protocols"] == ["finetune-mlp", "linear"]
    resolved = flat(config)
    checked = 0
    for key, value in flat({k: recipe[k] for k in ("data", "backbone", "pretrain", "byol", "augment", "eval")}).items():
        expected = TINY.get(key, value)
        assert resolved[key] == expected, key
        checked += 1
    assert checked >= 40
    # the values that make it their recipe, spelled out
    for key, value in {"data.pretrain_splits": "unlabeled", "backbone.stem": "small-maxpool",
                       "backbone.dropout": 0.15, "byol.tau_schedule": "constant",
                       "byol.copy_target_bn_buffers": False, "pretrain.lr_schedule": "step",
                       "pretrain.weight_decay_all": True, "pretrain.lr_gamma": 0.99}.items():
        assert resolved[key] == value
    selection = json.loads((folder / "info.json").read_text())["selection"]["finetune-mlp"]
    assert selection["encoder_relative_change"] > 0 and 1 <= selection["epoch"] <= 2

