"""Plugins without an install: --plugins modules, data.cards_dirs, name clashes, timm backbones.
(An installed plugin package, entry points and all: tests/test_plugin_package.py.)"""
import copy
import sys
from pathlib import Path

import pytest
import torch

from byol_bench.cli import main
from byol_bench.config import DEFAULTS, load_config
from byol_bench.data import DATASETS
from byol_bench.data.catalog import add_cards_dirs
from byol_bench.errors import UserError
from byol_bench.method import METHODS
from byol_bench.registry import NameClashError, import_plugins

ROOT = Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "configs/smoke.yaml")
DIGITS = (ROOT / "datasets" / "digits.yaml").read_text()


def card(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(DIGITS.replace("name: digits", f"name: {name}"))
    return folder


def test_a_plugin_method_named_like_a_built_in_is_refused_naming_both(tmp_path, monkeypatch):
    (tmp_path / "clashing_plugin.py").write_text(
        "from byol_bench.method import METHODS\nfrom byol_bench.methods.byol import BYOL\n\n\n"
        "@METHODS.register('byol')\nclass MyByol(BYOL):\n    '''Mine.'''\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    METHODS.names()
    with pytest.raises(NameClashError) as err:
        import_plugins(["clashing_plugin"])
    message = str(err.value)
    assert "\n" not in message and "method 'byol' is registered twice" in message
    assert "byol-bench (byol_bench.methods.byol)" in message and "clashing_plugin (clashing_plugin)" in message
    assert METHODS.get("byol").__module__ == "byol_bench.methods.byol"  # the built-in stays


def test_a_card_named_like_a_shipped_one_is_refused_naming_both_files(tmp_path):
    mine = card(tmp_path / "cards", "digits")
    with pytest.raises(NameClashError) as err:
        add_cards_dirs([str(mine)])
    message = str(err.value)
    assert "dataset 'digits' is registered twice" in message
    assert f"{ROOT / 'datasets' / 'digits.yaml'}" in message and f"{mine / 'digits.yaml'} (data.cards_dirs)" in message


def test_plugins_flag_with_a_module_that_cannot_be_imported_is_one_line(capsys):
    assert main(["--plugins", "no_such_plugin_module", "--list"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: cannot import plugin module 'no_such_plugin_module' (--plugins / run.plugins): "
                   "No module named 'no_such_plugin_module'")


def test_plugins_flag_imports_a_module_from_the_current_folder(tmp_path, monkeypatch, capsys):
    (tmp_path / "widget_plugin.py").write_text(
        "from byol_bench.method import METHODS\nfrom byol_bench.methods.byol import BYOL\n\n\n"
        "@METHODS.register('byol-widget')\nclass Widget(BYOL):\n    '''BYOL from a module beside the config.'''\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert main(["--plugins", "widget_plugin", "--config", SMOKE, "--methods", "byol-widget", "--dry-run",
                 "--results-dir", str(tmp_path / "r")]) == 0
    assert "digits / byol-widget / seed 0" in capsys.readouterr().out


def test_cards_dirs_adds_a_card_to_the_grid(tmp_path, capsys):
    folder = card(tmp_path / "my-cards", "digits-mine")
    assert main(["--config", SMOKE, "--datasets", "digits-mine", "--set", f"data.cards_dirs=[{folder}]",
                 "--dry-run", "--results-dir", str(tmp_path / "r")]) == 0
    assert "digits-mine / byol / seed 0" in capsys.readouterr().out
    assert "digits-mine" in DATASETS.names()
    add_cards_dirs([str(folder)])  # the same folder again: nothing new, no clash with itself


def test_cards_dirs_names_a_folder_that_is_not_there(tmp_path, capsys):
    assert main(["--config", SMOKE, "--set", f"data.cards_dirs=[{tmp_path / 'nope'}]", "--dry-run",
                 "--results-dir", str(tmp_path / "r")]) == 2
    assert "data.cards_dirs" in capsys.readouterr().err


# --- backbone.name: timm/<model> -------------------------------------------------------------

def timm_section(name: str, **options) -> dict:
    section = copy.deepcopy(DEFAULTS["backbone"])
    section.update(name=name, timm_options=options)
    return section


@pytest.mark.parametrize("name, options, feat_dim", [
    ("timm/resnet10t", {}, 512),
    ("timm/vit_tiny_patch16_224", {"patch_size": 4}, 192),  # img_size from the run: 16 px, 4x4 patches
])
def test_timm_backbone_builds_with_the_models_feature_dim(name, options, feat_dim):
    pytest.importorskip("timm", reason="timm is the optional extra byol-bench[timm]")
    from byol_bench.models.backbones import build_encoder, check_backbone

    section = timm_section(name, **options)
    check_backbone(section, 1, 16)
    encoder = build_encoder(section, in_channels=1, image_size=16)
    assert encoder.feat_dim == feat_dim
    assert encoder(torch.zeros(2, 1, 16, 16)).shape == (2, feat_dim)
    assert not any(getattr(m, "pretrained", False) for m in encoder.modules())


def test_timm_backbone_problems_are_one_line_before_anything_runs():
    pytest.importorskip("timm", reason="timm is the optional extra byol-bench[timm]")
    from byol_bench.models.backbones import check_backbone

    problems = {"timm/vit_tiny_patch16_22": "did you mean vit_tiny_patch16_224",
                "timm/resnet10t+norm": "backbone.norm applies to the built-in backbones",
                "timm/resnet10t+bad-option": "cannot encode 1-channel 16x16 images",
                "timm/resnet10t+pretrained": "may not set pretrained"}
    for case, expected in problems.items():
        name, _, twist = case.partition("+")
        section = timm_section(name, **{"bad-option": {"no_such_argument": 1},
                                        "pretrained": {"pretrained": True}}.get(twist, {}))
        if twist == "norm":
            section["norm"] = "gn"
        with pytest.raises(UserError) as err:
            check_backbone(section, 1, 16)
        assert expected in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_timm_model_name_and_options_are_in_the_run_identity():
    pytest.importorskip("timm", reason="timm is the optional extra byol-bench[timm]")
    from byol_bench.plan.run_config import run_config

    def run_hash(*sets):
        return run_config(load_config(SMOKE, list(sets)), "digits", "byol", 0, ["linear"])["run_hash"]

    plain = run_hash()
    resnet10 = run_hash("backbone.name=timm/resnet10t")
    resnet14 = run_hash("backbone.name=timm/resnet14t")
    dilated = run_hash("backbone.name=timm/resnet10t", "backbone.timm_options={output_stride: 8}")
    assert len({plain, resnet10, resnet14, dilated}) == 4
    assert plain == run_hash("backbone.timm_options={}")  # at its default the key is no part of old hashes


def test_without_timm_a_timm_backbone_names_the_extra(monkeypatch):
    from byol_bench.models.backbones import check_backbone

    monkeypatch.setitem(sys.modules, "timm", None)  # what `import timm` meets where it is not installed
    with pytest.raises(UserError, match=r'needs timm, which is not installed: pip install "byol-bench\[timm\]"'):
        check_backbone(timm_section("timm/resnet10t"), 1, 16)


def test_cards_are_read_from_any_traversable_not_only_a_folder(tmp_path):
    """A plugin's cards come through importlib.resources, which may hand a zip's entries."""
    import zipfile

    from byol_bench.data import get_card, register_cards
    from byol_bench.data.card import card_file

    archive = tmp_path / "cards.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("cards/digits-zipped.yaml", DIGITS.replace("name: digits", "name: digits-zipped"))
    DATASETS.names()
    register_cards(zipfile.Path(archive, "cards/"), package="zipped_cards")
    assert get_card("digits-zipped").loader == "sklearn-digits"
    assert card_file(get_card("digits-zipped")) == f"{archive}/cards/digits-zipped.yaml"
    assert DATASETS.origin("digits-zipped") == f"zipped_cards ({archive}/cards/digits-zipped.yaml)"
