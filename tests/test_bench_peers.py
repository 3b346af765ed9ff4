"""benchmarks.peers: lightly's BYOL against ours on identical work, every pair reported."""
import json

import pytest
import torch

pytest.importorskip("lightly")  # the `peers` extra, not the dev one

import benchmarks.peers as peers  # noqa: E402
from benchmarks.phases import PHASES  # noqa: E402


def test_lightly_and_ours_build_the_same_networks():
    from accelerate import Accelerator
    from benchmarks.step import build
    from byol_bench.config import load_config
    args = peers.build_parser().parse_args(["--batch-size", "4"])
    ours = build("byol", load_config(None, peers.identical_work(args)), 3, Accelerator(cpu=True), 5)
    lightly = peers.Lightly(args, torch.device("cpu")).model

    def shapes(*modules):
        return sorted(tuple(p.shape) for m in modules for p in m.parameters())
    assert shapes(ours.method.encoder) == shapes(lightly.backbone)
    # lightly's first head Linear has no bias (a BatchNorm follows); ours keeps one: 4096 numbers.
    head = [s for s in shapes(ours.method.online.net[1], ours.method.online.predictor) if s != (4096,)]
    assert head == [s for s in shapes(lightly.projection_head, lightly.prediction_head) if s != (4096,)]
    assert isinstance(ours.optimizer.optimizer, torch.optim.SGD)
    assert ours.optimizer.param_groups[0]["momentum"] == 0.9
    assert all(g["weight_decay"] == 0.0 for g in ours.optimizer.param_groups)


def test_peers_reports_every_pair_and_both_phase_breakdowns(capsys):
    assert peers.main(["--batch-size", "4", "--image-size", "8", "--pairs", "2", "--warmup", "0",
                       "--device", "cpu"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    pairs, programs, (summary,) = rows[:2], rows[2:4], rows[4:]
    assert [p["first"] for p in pairs] == ["ours", "lightly"]  # who goes first alternates
    for p in pairs:
        assert p["ratio"] == pytest.approx(p["ours_img_per_s"] / p["lightly_img_per_s"], rel=0.02)
    assert [p["program"] for p in programs] == ["ours", "lightly"]
    for p in programs:
        assert set(p["phases_ms"]) == {*PHASES, "total"}
        assert p["phases_ms"]["online forward"] > 0 and p["phases_ms"]["backward"] > 0
    assert summary["pairs"] == 2 and summary["ratio_median"] > 0
