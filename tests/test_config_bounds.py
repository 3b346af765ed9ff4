"""Issue 15, item 12 (values): a numeric config value that means nothing is refused where the
config is read, in one line naming the key and the valid range, never a traceback, a silent
substitute (batch 1 for batch 0) or a FAILED run."""
from pathlib import Path

import pytest

from byol_bench.cli import main
from byol_bench.config import DEFAULTS, load_config
from byol_bench.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("item, message", [
    ("data.image_size=-4", "'data.image_size': must be at least 0, got -4"),
    ("pretrain.batch_size=0", "'pretrain.batch_size': must be at least 1, got 0"),
    ("pretrain.epochs=0", "'pretrain.epochs': must be at least 1"),
    ("pretrain.lr=-0.1", "'pretrain.lr': must be at least 0"),
    ("eval.knn.k=0", "'eval.knn.k': must be at least 1"),
    ("eval.knn.temperature=0", "'eval.knn.temperature': must be greater than 0"),
    ("augment.hflip_p=1.5", "'augment.hflip_p': must be in [0, 1], got 1.5"),
    ("augment.blur_p=[1.0, -0.1]", "'augment.blur_p': each value must be in [0, 1]"),
    ("augment.blur_p=[0.5]", "'augment.blur_p' wants two values"),
    ("augment.crop_scale=[0.9, 0.2]", "low must not exceed high"),
    ("augment.crop_scale=[0, 1]", "'augment.crop_scale': each value must be in (0, 1]"),
    ("eval.semi.fractions=[0, 10]", "'eval.semi.fractions': each value must be in (0, 100]"),
    ("eval.linear.weight_decays=[]", "wants at least one value"),
    ("backbone.dropout=1", "'backbone.dropout': must be in [0, 1)"),
    ("pretrain.lr=.inf", "'pretrain.lr': must be at least 0"),
    ("benchmark.seeds=0", "'benchmark.seeds' must be a count of at least 1"),
    ("benchmark.seeds=[-1]", "'benchmark.seeds' must be a non-empty list of integers in [0, 4294967295]"),
])
def test_meaningless_values_are_refused_with_the_range(item: str, message: str):
    with pytest.raises(UserError) as err:
        load_config(None, [item])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_every_numeric_key_has_bounds():
    """The table covers the schema: a new numeric key without a range fails here."""
    from byol_bench.config import BOUNDS
    # seeds: their own rule; stale_after_s and heartbeat_s: against each other; slurm: by its launcher
    exempt = {"benchmark.seeds", "run.stale_after_s", "run.heartbeat_s"} | {f"slurm.{k}" for k in DEFAULTS["slurm"]}

    def leaves(node, prefix=""):
        for key, value in node.items():
            if isinstance(value, dict) and value:
                yield from leaves(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}", value

    numeric = {k for k, v in leaves(DEFAULTS) if not isinstance(v, bool) and (
        isinstance(v, (int, float)) or (isinstance(v, list) and v and isinstance(v[0], (int, float))))}
    assert numeric - exempt - set(BOUNDS) == set()
    assert set(BOUNDS) <= numeric
    for config in sorted((ROOT / "configs").glob("*.yaml")):
        load_config(config)  # every shipped config is within the bounds


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "-1"], "--seeds wants a count (e.g. 3) or a comma list of non-negative integers"),
    (["--seeds", "0,-3"], "--seeds wants a count"),
    (["--set", "data.image_size=-4"], "'data.image_size': must be at least 0, got -4"),
    (["--set", "pretrain.batch_size=0"], "'pretrain.batch_size': must be at least 1, got 0"),
])
def test_cli_refuses_them_in_one_line_before_writing(tmp_path: Path, capsys, argv, message):
    code = main(["--config", str(ROOT / "configs/smoke.yaml"), "--results-dir", str(tmp_path / "r"), *argv])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()
