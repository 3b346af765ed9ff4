"""benchmarks.step: one JSON line per method with the contract's fields, built like a run,
extra-term warm-up off, timed through byol_bench.training.loop.train_step."""
import json

import pytest

import benchmarks.step as bench_step
from benchmarks.phases import PHASES, PhaseClock, instrument
from byol_bench.config import load_config


def test_bench_step_prints_one_json_line_per_method(capsys, monkeypatch):
    calls = []
    real_step = bench_step.train_step

    def counting_step(method, *args, **kwargs):
        calls.append(type(method).__name__)
        return real_step(method, *args, **kwargs)

    monkeypatch.setattr(bench_step, "train_step", counting_step)
    methods = ["byol", "byol-tracin", "byol-nn", "byol-ccsl", "byol-cssl", "byol-nobn"]
    code = bench_step.main(["--methods", ",".join(methods), "--backbone", "small-cnn", "--image-size", "8",
                            "--batch-size", "6", "--steps", "2", "--warmup", "1", "--device", "cpu",
                            "--set", "backbone.width=4", "--set", "byol.proj_hidden=16",
                            "--set", "byol.pred_hidden=16", "--set", "byol.proj_dim=8"])
    assert code == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["method"] for r in rows] == methods
    for row in rows:
        assert set(row) == {"method", "img_per_s", "peak_mem_mb", "step_ms", "ratio_to_byol"}
        assert row["img_per_s"] > 0 and row["step_ms"] > 0 and row["peak_mem_mb"] > 0
        assert row["ratio_to_byol"] > 0
    assert rows[0]["ratio_to_byol"] == 1.0
    assert len(calls) == len(methods) * 3  # warm-up + 2 timed rounds, all through train_step


def test_bench_builds_methods_with_the_extra_term_on_from_step_zero():
    from accelerate import Accelerator
    cfg = load_config(None, ["backbone.width=4", "byol.proj_hidden=16", "byol.pred_hidden=16"])
    bench = bench_step.build("byol-tracin", cfg, 3, Accelerator(cpu=True), total_steps=5)
    assert bench.method.opt["warmup_frac"] == 0.0
    assert bench.method.cfg["backbone"]["name"] == "small-cnn"
    nobn = bench_step.build("byol-nobn-ln", cfg, 3, Accelerator(cpu=True), total_steps=5)
    assert nobn.method.cfg["backbone"]["norm"] == "ln"  # configure ran, as in a run


@pytest.mark.parametrize("argv", [["--methods", "supervised"], ["--methods", "nope"], ["--steps", "0"]])
def test_bench_step_user_errors_exit_2(argv, capsys):
    assert bench_step.main([*argv, "--backbone", "small-cnn", "--device", "cpu"]) == 2
    assert capsys.readouterr().err.startswith("error:")


def test_bench_step_logging_overhead_mode_times_steps_with_and_without_logging(capsys):
    code = bench_step.main(["--logging-overhead", "--every", "5", "--methods", "byol", "--backbone", "small-cnn",
                            "--image-size", "8", "--batch-size", "6", "--steps", "2", "--warmup", "1",
                            "--device", "cpu", "--set", "backbone.width=4", "--set", "byol.proj_hidden=16",
                            "--set", "byol.pred_hidden=16", "--set", "byol.proj_dim=8"])
    assert code == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert set(row) == {"method", "every", "step_ms_off", "step_ms_on", "extras_ms", "flush_ms", "paired_pct",
                        "logging_overhead_pct"}
    assert row["method"] == "byol" and row["every"] == 5
    assert row["step_ms_off"] > 0 and row["step_ms_on"] > 0 and row["flush_ms"] > 0 and row["extras_ms"] > 0
    assert row["logging_overhead_pct"] == pytest.approx(
        100 * (row["extras_ms"] + row["flush_ms"] / 5) / row["step_ms_off"], rel=0.02, abs=1e-3)


def test_bench_step_phases_mode_breaks_the_step_down_and_restores_what_it_wrapped(capsys):
    code = bench_step.main(["--phases", "--methods", "byol", "--backbone", "small-cnn", "--image-size", "8",
                            "--batch-size", "6", "--steps", "1", "--warmup", "1", "--device", "cpu",
                            "--set", "backbone.width=4", "--set", "byol.proj_hidden=16",
                            "--set", "byol.pred_hidden=16", "--set", "byol.proj_dim=8"])
    assert code == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    phases = row["phases_ms"]
    assert set(phases) == {*PHASES, "total"}
    for name in ("online forward", "target forward", "backward", "optimizer", "EMA"):
        assert phases[name] > 0, name  # every hook fired
    # One round: the phases tile the step.
    assert sum(phases[p] for p in PHASES) == pytest.approx(phases["total"], abs=0.05)

    from accelerate import Accelerator
    cfg = load_config(None, ["backbone.width=4", "byol.proj_hidden=16", "byol.pred_hidden=16"])
    accelerator = Accelerator(cpu=True)
    bench = bench_step.build("byol", cfg, 3, accelerator, total_steps=5)
    with instrument(PhaseClock(False), bench.model, bench.method.target, accelerator, bench.optimizer,
                    bench.method):
        pass
    for obj, name in ((accelerator, "backward"), (bench.optimizer, "step"), (bench.optimizer, "zero_grad"),
                      (bench.method, "after_optimizer_step")):
        assert name not in vars(obj), name  # the class's own method again
    assert not bench.model._forward_hooks and not bench.method.target._forward_pre_hooks
