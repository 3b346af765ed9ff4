"""benchmarks.overhead: harness and bare epochs alternate, every pair is reported, and the bare
loop does the same work as the harness (same steps, a loss as the harness's)."""
import json

import benchmarks.overhead as overhead

TINY = ["backbone.width=4", "byol.proj_hidden=16", "byol.pred_hidden=16", "byol.proj_dim=8",
        "pretrain.batch_size=512", "data.image_size=8", "run.log_every_steps=1"]


def test_overhead_prints_every_pair_and_a_paired_overhead(capsys, tmp_path):
    assert overhead.main(["--epochs", "2", "--data-root", str(tmp_path), *sum((["--set", s] for s in TINY), [])]) == 0
    row = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert len(row["pairs"]) == 2 and row["pairs_timed"] == 1
    assert row["pairs"][0]["harness_s"] is None  # the first harness epoch includes its set-up
    assert all(p["bare_s"] > 0 for p in row["pairs"]) and all(p["harness_s"] > 0 for p in row["pairs"][1:])
    assert row["overhead_pct"] > -100 and row["harness_epoch_s"] > 0 and row["bare_epoch_s"] > 0
    assert row["step_logs"] == 4  # 2 steps an epoch, logged at every step: the step log was on


def test_bare_loop_steps_like_the_harness(tmp_path):
    import tempfile

    from accelerate import Accelerator
    from byol_bench.data import load_dataset
    rc, every = overhead.run_config("default", TINY, 1)
    assert every == 1
    with tempfile.TemporaryDirectory() as cache:
        data = load_dataset("digits", tmp_path, 8, cache)
    bare = overhead.BareLoop(rc, data, Accelerator(cpu=True), seed=0)
    before = [p.clone() for p in bare.method.target.parameters()]
    loss = bare.epoch()
    assert bare.step == len(bare.loader) == 1078 // 512  # drop_last, as the harness's loader
    assert 0 < loss < 4 * bare.step  # 2 - 2cos summed over two directions: in [0, 8) a step
    assert any(not p.equal(q) for p, q in zip(bare.method.target.parameters(), before))  # EMA moved


def test_time_split_sums_the_stored_runs_seconds(tmp_path):
    from benchmarks.time_split import split
    for run_id, (wall, pretrain, linear, knn, status) in enumerate([(10.0, 6.0, 3.0, 0.5, "COMPLETED"),
                                                                    (4.0, 0.0, 2.0, 1.0, "COMPLETED"),
                                                                    (9.0, 9.0, 0.0, 0.0, "FAILED")], 1):
        folder = tmp_path / "runs" / str(run_id)
        folder.mkdir(parents=True)
        record = {"status": status, "start_time": "2026-12-03T10:00:00.000000",
                  "stop_time": f"2026-12-03T10:00:{int(wall) + 1:02d}.000000",
                  "result": {"cost/wall_s": wall, "cost/pretrain_s": pretrain}}
        (folder / "run.json").write_text(json.dumps(record))
        (folder / "info.json").write_text(json.dumps({"seconds": {"linear": linear, "knn": knn}}))
    (tmp_path / "runs" / "_sources").mkdir()
    assert split(tmp_path, total_s=20.0) == {
        "runs": 2, "pretrain_s": 6.0, "linear_s": 5.0, "knn_s": 1.5, "run_other_s": 1.5,
        "between_runs_s": 2.0, "total_s": 20.0, "outside_runs_s": 4.0}
