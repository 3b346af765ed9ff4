"""What makes a stored result stale (issue 15, items 1 and 2; README "What makes a stored result
stale"): code edits and card edits, in a copy of the checkout, decide what the next command
re-runs; checkpoints and encoders of other code, data or shapes are set aside, never used."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import byol_bench
from byol_bench.cli import main
from byol_bench.config import load_config
from byol_bench.plan.grid import expand_grid
from byol_bench.run.build import build_method
from byol_bench.store.checkpoints import checkpoint_dir, write_checkpoint
from byol_bench.store.encoders import encoder_path, load_encoder

ROOT = Path(byol_bench.__file__).resolve().parents[1]  # the checkout under test, copied and edited
# Two methods that share byol.py, two seeds, one epoch on 64 images, kNN only.
GRID = ["--config", "configs/smoke.yaml", "--protocols", "knn", "--methods", "byol,byol-ccsl", "--seeds", "2",
        "--set", "data.train_subsample=64", "--set", "pretrain.batch_size=32", "--results-dir", "results"]
TIMEOUT_S = 300


def bench(checkout: Path, *args: str) -> str:
    """`python run_bench.py GRID args` in `checkout`, importing the checkout's own code; its stdout."""
    proc = subprocess.run([sys.executable, "run_bench.py", *GRID, *args], cwd=checkout, capture_output=True,
                          text=True, timeout=TIMEOUT_S, env={**os.environ, "PYTHONPATH": str(checkout)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def plan(output: str) -> dict[tuple[str, int], str]:
    """--dry-run's lines as (method, seed) -> the whole line."""
    lines = {}
    for line in output.splitlines():
        m = re.match(r"(skip|evaluate|pretrain) +digits / (\S+) / seed (\d+)", line)
        if m:
            lines[(m.group(2), int(m.group(3)))] = line
    return lines


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> Path:
    """A copy of the checkout with a completed store of the tiny grid (4 runs)."""
    checkout = tmp_path_factory.mktemp("stored")
    for name in ("byol_bench", "harness", "methods", "datasets", "configs"):
        shutil.copytree(ROOT / name, checkout / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "run_bench.py", checkout)
    assert "4 completed" in bench(checkout)
    return checkout


@pytest.fixture
def checkout(stored, tmp_path) -> Path:
    """A fresh copy of the stored checkout for one test to edit."""
    return Path(shutil.copytree(stored, tmp_path / "checkout", symlinks=True))


def test_comments_docstrings_and_formatting_do_not_count(tmp_path):
    from byol_bench.plan.fingerprints import code_hash
    a, b, c = tmp_path / "a.py", tmp_path / "b.py", tmp_path / "c.py"
    a.write_text('"""Doc."""\nX = {"m": 0.0}\n\n\ndef f(x):\n    """Doc."""\n    return x + X["m"]\n')
    b.write_text('"""Other doc."""\n# a comment\nX = {\n    "m": 0.0,\n}\ndef f(x):  # why\n    return (x + X["m"])\n')
    c.write_text('"""Doc."""\nX = {"m": 0.5}\n\n\ndef f(x):\n    """Doc."""\n    return x + X["m"]\n')
    assert code_hash(a) == code_hash(b) != code_hash(c)


def test_a_method_edit_reruns_that_methods_runs_and_no_others(checkout):
    ccsl = checkout / "methods" / "byol_ccsl.py"
    # Comments, docstrings and formatting: nothing to re-run.
    edit(ccsl, '    """BYOL + CCSL (Garg & Jain 2022; formula ours, see the module doc)."""',
         '    """BYOL + CCSL: reworded."""\n    # a comment\n')
    edit(ccsl, 'options = {**CrossSimilarityBYOL.options, "margin": 0.0}',
         'options = {\n        **CrossSimilarityBYOL.options,\n        "margin": 0.0,\n    }')
    before = plan(bench(checkout, "--dry-run"))
    assert len(before) == 4 and all(line.startswith("skip") for line in before.values()), before

    # A change of behaviour (the loss it uses): byol-ccsl's runs again, byol's not.
    edit(ccsl, 'kind = "ccsl"', 'kind = "cssl"')
    after = plan(bench(checkout, "--dry-run"))
    for seed in (0, 1):
        assert after[("byol", seed)].startswith("skip")
        assert after[("byol-ccsl", seed)].startswith("pretrain")  # its old encoder is not evaluated either
        assert re.search(r"methods/byol_ccsl\.py changed since run \d", after[("byol-ccsl", seed)])
    status = bench(checkout, "--status")
    assert re.search(r"outdated +digits / byol-ccsl / seed 0 .*methods/byol_ccsl\.py changed", status), status
    assert "2 done" in status and "2 outdated" in status
    assert "2 completed, 0 failed, 2 skipped" in bench(checkout)


def test_a_card_split_edit_reuses_no_run_and_no_encoder_of_the_old_split(checkout):
    card = checkout / "datasets" / "digits.yaml"
    edit(card, "splits: {train: 0.6, val: 0.2, test: 0.2}", "splits: {train: 0.6, val: 0.1, test: 0.3}")
    edit(card, "split_seed: 0", "split_seed: 1")
    lines = plan(bench(checkout, "--dry-run"))
    assert len(lines) == 4
    for line in lines.values():
        # pretrain, not evaluate: the saved encoders saw images that are test images now.
        assert line.startswith("pretrain") and re.search(r"card digits: split_seed, splits changed since run \d", line)
        assert "saved encoder from other code or data (card digits: split_seed, splits changed)" in line

    out = bench(checkout, "--methods", "byol", "--seeds", "1")
    assert "1 completed, 0 failed, 0 skipped" in out
    assert len(list((checkout / "results" / "encoders").glob("*.stale"))) == 1  # set aside, kept
    # The leaderboard keeps the new split's run alone: byol seed 1 and byol-ccsl are on the old one.
    board = json.loads((checkout / "results" / "leaderboard.json").read_text())
    assert [(r["method"], r["n"], r["seeds"]) for r in board if r["primary"]] == [("byol", 1, [0])]
    text = (checkout / "results" / "LEADERBOARD.md").read_text()
    assert "## Runs left out (made on other data)" in text
    assert len(re.findall(r"- run \d+ \(digits / byol(-ccsl)? / seed \d\): card digits: split_seed, splits changed",
                          text)) == 3


def test_a_shared_code_change_is_noted_and_rerun_outdated_reruns_it(checkout):
    edit(checkout / "harness" / "losses" / "byol.py", "EPS = 1e-12", "EPS = 1e-10")
    lines = plan(bench(checkout, "--dry-run"))
    assert all(line.startswith("skip") and "harness/losses/byol.py changed since run" in line
               and "--rerun-outdated" in line for line in lines.values()), lines
    assert "2 completed, 0 failed, 0 skipped" in bench(checkout, "--rerun-outdated", "--methods", "byol")
    text = (checkout / "results" / "LEADERBOARD.md").read_text()
    assert re.search(r"Pretraining code differs between the runs of this table: 2 of 4 runs .*"
                     r"harness/losses/byol\.py", text)
    lines = plan(bench(checkout, "--dry-run", "--rerun-outdated"))
    assert [k for k, line in lines.items() if line.startswith("pretrain")] == [("byol-ccsl", 0), ("byol-ccsl", 1)]


def tiny_store(results: Path) -> tuple[list[str], dict]:
    """The CLI arguments of a one-run grid (byol, seed 0) and that run's config as the grid plans it."""
    args = ["--config", str(ROOT / "configs/smoke.yaml"), "--methods", "byol", "--seeds", "1", "--protocols", "knn",
            "--set", "data.train_subsample=64", "--set", "pretrain.batch_size=32", "--results-dir", str(results)]
    cfg = load_config(ROOT / "configs/smoke.yaml", ["benchmark.methods=[byol]", "benchmark.seeds=1",
                                                    "benchmark.protocols=[knn]", "data.train_subsample=64",
                                                    "pretrain.batch_size=32"])
    (spec,) = expand_grid(cfg, results / "runs")
    return args, spec.config


# What a checkpoint or encoder of other pretraining code records (harness/plan/fingerprints.py).
OTHER_CODE = {"method_code": [["methods/byol.py", "0" * 16]], "shared_code": [["harness/losses/byol.py", "0" * 16]]}


def test_checkpoints_of_other_code_or_that_do_not_fit_are_set_aside_and_the_run_starts_fresh(tmp_path, capsys):
    results = tmp_path / "results"
    args, rc = tiny_store(results)
    this = build_method(rc, 1, 10, "multiclass")
    narrower = build_method({**rc, "backbone": {**rc["backbone"], "width": 4}}, 1, 10, "multiclass")
    folder = checkpoint_dir(results, rc["pretrain_hash"])
    # An older checkpoint of other pretraining code, a newer one saved before fingerprints
    # whose tensors do not fit (the small CNN's width changed): neither is resumed.
    write_checkpoint(folder, {"networks": this.network_states(), "step": 3, "epoch": 0, "batch": 3,
                              "fingerprints": OTHER_CODE})
    write_checkpoint(folder, {"networks": narrower.network_states(), "step": 5, "epoch": 0, "batch": 5})

    assert main(args) == 0
    out = capsys.readouterr()
    assert "1 completed, 0 failed" in out.out
    assert "does not fit the model" in out.out + out.err and "made from other pretraining code" in out.out + out.err
    assert sorted(p.name for p in folder.iterdir()) == ["ckpt-000000003.stale", "ckpt-000000005.stale"]
    (run,) = (results / "runs").glob("[0-9]*")
    assert "resumed_from" not in json.loads((run / "info.json").read_text())
    config = json.loads((run / "config.json").read_text())
    assert config["fingerprints"] == json.loads(json.dumps(rc["fingerprints"]))
    saved = load_encoder(encoder_path(results, rc["pretrain_hash"]))
    fp = rc["fingerprints"]
    assert saved["fingerprints"] == {"method_code": fp["method_code"], "shared_code": fp["shared_code"],
                                     "data": {"digits": fp["data"]["digits"]}}


def test_an_encoder_of_other_pretraining_code_is_set_aside_not_evaluated(tmp_path, capsys):
    results = tmp_path / "results"
    args, rc = tiny_store(results)
    encoder = build_method(rc, 1, 10, "multiclass").encoder
    path = encoder_path(results, rc["pretrain_hash"]).with_suffix(".pt")  # as stores before safetensors hold it
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": encoder.state_dict(), "train_stats": {"img_per_s": 1.0, "seconds": 1.0, "peak_mem_mb": 0.0},
                "pretrain_hash": rc["pretrain_hash"], "run_id": "1", "curves": [], "fingerprints": OTHER_CODE}, path)

    assert main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^pretrain +digits / byol / seed 0 .*saved encoder from other code or data "
                     r"\(methods/byol\.py changed", out, re.M), out
    assert main(args) == 0
    assert "1 completed, 0 failed" in capsys.readouterr().out
    assert (results / "encoders" / f"{rc['pretrain_hash']}.stale").exists()
    (run,) = (results / "runs").glob("[0-9]*")
    info = json.loads((run / "info.json").read_text())
    assert "pretrained_by" not in info and info["pretrain_steps"] > 0


def test_the_import_name_of_the_package_does_not_count(tmp_path):
    """Stores made before the package was imported as byol_bench keep their method fingerprints."""
    from byol_bench.plan.fingerprints import code_hash
    old, new, other = tmp_path / "old.py", tmp_path / "new.py", tmp_path / "other.py"
    old.write_text("from harness.method import METHODS\nfrom methods.byol import BYOL\nimport harness.losses.ema\n")
    new.write_text("from byol_bench.method import METHODS\nfrom byol_bench.methods.byol import BYOL\n"
                   "import byol_bench.losses.ema\n")
    other.write_text("from byol_bench.method import METHODS\nfrom byol_bench.methods.byol_nn import BYOL\n"
                     "import byol_bench.losses.ema\n")
    assert code_hash(old) == code_hash(new) != code_hash(other)
