"""--config NAME: a shipped config by name from any folder, a path as before, the shipped
default.yaml when none is given, and an unknown name in one line listing the shipped names."""
from pathlib import Path

import pytest

from byol_bench.cli import config_source, main
from byol_bench.config import load_config
from byol_bench.shipped import shipped_names

ROOT = Path(__file__).resolve().parents[1]
SOME_CONFIGS = {"bn-ablation", "default", "fashion-cpu", "garg-jain-code", "medical-paper", "smoke", "stl10-paper"}


def test_every_shipped_config_resolves_by_name_from_an_empty_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no configs/ here: a name must not depend on the working folder
    assert set(shipped_names("configs")) == {p.stem for p in (ROOT / "configs").glob("*.yaml")} >= SOME_CONFIGS
    for name in shipped_names("configs"):
        assert load_config(config_source(name)) == load_config(ROOT / "configs" / f"{name}.yaml"), name
    # The default is the shipped default.yaml.
    assert main(["--dry-run", "--results-dir", str(tmp_path / "r")]) == 0
    default = capsys.readouterr().out
    assert main(["--config", str(ROOT / "configs" / "default.yaml"), "--dry-run", "--results-dir", str(tmp_path / "r")]) == 0
    assert capsys.readouterr().out == default and "digits / byol / seed 0" in default
    assert main(["--config", "smoke", "--dry-run", "--results-dir", str(tmp_path / "r")]) == 0
    assert "2 runs in the grid" in capsys.readouterr().out


def test_a_config_path_still_wins_over_a_name(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "smoke").write_text("benchmark: {methods: [random-init], seeds: 1, datasets: [digits]}\n")
    assert main(["--config", "smoke", "--dry-run", "--results-dir", str(tmp_path / "r")]) == 0
    assert "1 runs in the grid" in capsys.readouterr().out


@pytest.mark.parametrize("value, message", [
    ("nope", "error: --config nope: no such file and no shipped config of that name; shipped configs: "
             "bn-ablation, default, fashion-cpu"),
    ("no/such.yaml", "error: cannot read config file no/such.yaml"),
])
def test_an_unknown_config_is_one_line(tmp_path, monkeypatch, capsys, value, message):
    monkeypatch.chdir(tmp_path)
    assert main(["--config", value, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
    assert not (tmp_path / "results").exists()
