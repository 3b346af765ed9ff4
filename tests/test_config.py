import pytest

from byol_bench.config import DEFAULTS, config_hash, load_config, merge, parse_set, seed_list
from byol_bench.errors import UserError


def test_defaults_load_and_set_overrides_are_typed():
    cfg = load_config(None, ["pretrain.epochs=5", "pretrain.lr=1", "benchmark.seeds=[0, 4]",
                             "backbone.norm=gn+ws", "augment.crop_scale=[0.3, 1.0]",
                             "pretrain.weight_decay=4e-3"])
    assert cfg["pretrain"]["weight_decay"] == 4e-3
    assert cfg["pretrain"]["epochs"] == 5
    assert cfg["pretrain"]["lr"] == 1.0 and isinstance(cfg["pretrain"]["lr"], float)
    assert cfg["benchmark"]["seeds"] == [0, 4]
    assert cfg["backbone"]["norm"] == "gn+ws"
    assert DEFAULTS["pretrain"]["epochs"] == 20  # defaults untouched


def test_yaml_file_is_merged(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("pretrain:\n  epochs: 3\nmethod_options:\n  byol-tracin: {lam: 0.5}\n")
    cfg = load_config(path, ["pretrain.batch_size=32"])
    assert (cfg["pretrain"]["epochs"], cfg["pretrain"]["batch_size"]) == (3, 32)
    assert cfg["method_options"] == {"byol-tracin": {"lam": 0.5}}


@pytest.mark.parametrize("item, message", [
    ("pretrain.epoch=5", "unknown config key 'pretrain.epoch'; valid keys under pretrain: epochs"),
    ("pretrian.epochs=5", "unknown config key 'pretrian'"),
    ("pretrain.epochs=five", "'pretrain.epochs' wants a int, got 'five'"),
    ("pretrain.epochs=2.5", "wants a int"),
    ("pretrain.drop_last=1", "wants a bool"),
    ("pretrain=3", "is a section"),
    ("benchmark.seeds=abc", "wants a int or list"),
])
def test_bad_overrides_name_the_key(item, message):
    with pytest.raises(UserError) as err:
        load_config(None, [item])
    assert message in str(err.value)


@pytest.mark.parametrize("item", ["epochs", "=3", "a..b=1", "pretrain.=1"])
def test_malformed_set(item):
    with pytest.raises(UserError, match="malformed --set"):
        parse_set(item)


def test_unreadable_and_invalid_config_files(tmp_path):
    with pytest.raises(UserError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("pretrain: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(UserError, match="must hold a mapping"):
        load_config(scalar)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("trainer: {epochs: 3}\n")
    with pytest.raises(UserError, match="unknown config key 'trainer'"):
        load_config(unknown)


def test_seed_list():
    assert seed_list(3) == [0, 1, 2]
    assert seed_list([5, 1, 5]) == [5, 1]
    for bad in (0, [], ["a"]):
        with pytest.raises(UserError):
            seed_list(bad)


def test_hash_ignores_where_data_lives_but_not_what_is_computed():
    a = merge(DEFAULTS, {})
    b = merge(DEFAULTS, {"data": {"root": "/elsewhere", "num_workers": 4}})
    c = merge(DEFAULTS, {"pretrain": {"epochs": 21}})
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash(c)
    assert len(config_hash(a)) == 16


def test_drop_keys_copies_only_the_paths_it_changes_and_leaves_the_input_alone():
    import copy
    import json
    from byol_bench.config import drop_keys
    cfg = {"a": {"b": {"c": 1, "d": [1, 2]}, "e": 2}, "f": {"g": 3}, "h": 4}
    before = copy.deepcopy(cfg)
    out = drop_keys(cfg, ("a.b.c", "h", "x.y", "a.missing.z"))
    assert out == {"a": {"b": {"d": [1, 2]}, "e": 2}, "f": {"g": 3}}
    assert cfg == before and json.dumps(cfg) == json.dumps(before)   # the input is untouched
    assert out["f"] is cfg["f"]                                     # what is not dropped is shared
