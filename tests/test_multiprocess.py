"""Two CPU processes (accelerate's debug_launcher: fork + gloo): the grid runs once, only the
main process writes Sacred runs, every process agrees on each run's outcome, no collective is
left unmatched, and the cross-image losses do not depend on the process count.

Each launcher runs in a fresh interpreter with a hard timeout: a hang fails the test instead
of blocking the suite (and forking a process whose torch thread pool already runs, as it does
after other tests, can deadlock the children).
"""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--set", "backbone.width=4", "--set", "byol.proj_hidden=16", "--set", "byol.pred_hidden=16",
        "--set", "byol.proj_dim=8"]

pytestmark = pytest.mark.multiprocess


def launch(script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def runs_by_key(results: Path) -> dict[tuple[str, int], list[dict]]:
    out: dict[tuple[str, int], list[dict]] = {}
    for folder in (results / "runs").iterdir():
        if folder.name.isdigit():
            config = json.loads((folder / "config.json").read_text())
            run = json.loads((folder / "run.json").read_text())
            out.setdefault((config["method"], config["seed"]), []).append(run)
    return out


BENCH = """
    import sys
    from accelerate import debug_launcher

    def bench(results_dir, tiny):
        from byol_bench.cli import main
        code = main(["--config", "configs/smoke.yaml", "--results-dir", results_dir,
                     "--methods", "byol", "--seeds", "1", "--protocols", "linear,knn,semi",
                     "--set", "eval.semi.fractions=[10]", "--set", "eval.finetune.epochs=2", *tiny])
        assert code == 0

    debug_launcher(bench, args=(sys.argv[1], sys.argv[2:]), num_processes=2)
"""


def test_two_process_run_is_observed_once(tmp_path):
    results = tmp_path / "results"
    launch(BENCH, str(results), *TINY)
    runs = runs_by_key(results)
    assert list(runs) == [("byol", 0)] and len(runs[("byol", 0)]) == 1
    run = runs[("byol", 0)][0]
    assert run["status"] == "COMPLETED", run.get("fail_trace")
    assert run["result"]["linear/accuracy"] > 0.1
    assert {"knn/accuracy", "semi10/accuracy"} <= set(run["result"])
    folder = next(p for p in (results / "runs").iterdir() if p.name.isdigit())
    assert json.loads((folder / "info.json").read_text())["world_size"] == 2
    # Only the main process logs to the tracker: one run folder, one writer's event file.
    (tracked,) = (results / "tensorboard").iterdir()
    assert tracked.name.startswith(f"{folder.name}-") and len(list(tracked.glob("events.out.tfevents.*"))) == 1


FAILURES = """
    import json, sys, time
    from datetime import timedelta
    from pathlib import Path
    from accelerate import debug_launcher

    def grid(results_dir, tiny):
        import torch
        from accelerate import Accelerator, InitProcessGroupKwargs
        from byol_bench.config import load_config
        from byol_bench.evaluation import PROTOCOLS
        from byol_bench.plan.grid import expand_grid
        from byol_bench.method import METHODS
        from byol_bench.run.grid_runner import run_grid
        from byol_bench.methods.byol import BYOL

        @METHODS.register("fail-train-rank1", description="test: raises in step 2 on process 1")
        class FailOnRank1(BYOL):
            def extra_loss(self, out, ctx):  # a variant's own loss code failing on one process
                if ctx.rank == 1 and ctx.step == 2:
                    raise RuntimeError("injected failure on rank 1")
                return super().extra_loss(out, ctx)

        @METHODS.register("nan-rank1", description="test: NaN loss in the last step on process 1")
        class NaNOnRank1(BYOL):
            def training_step(self, model, views, ctx):
                loss, logs = super().training_step(model, views, ctx)
                if ctx.rank == 1 and ctx.step == ctx.total_steps - 1:
                    loss = loss * float("nan")
                return loss, logs

        calls = {"boom": 0, "slow": 0}

        @PROTOCOLS.register("boom-once", description="test: raises on its first call")
        def boom_once(ctx):
            calls["boom"] += 1
            if calls["boom"] == 1:
                raise ValueError("injected evaluation failure on the main process")
            return {}

        @PROTOCOLS.register("slow-once", description="test: outlives the collective timeout once")
        def slow_once(ctx):
            calls["slow"] += 1
            if calls["slow"] == 1:
                time.sleep(15)
            return {}

        cfg = load_config("configs/smoke.yaml", [
            "benchmark.methods=[byol, fail-train-rank1, nan-rank1, random-init]", "benchmark.seeds=2",
            "benchmark.protocols=[linear, boom-once, slow-once]", *tiny[1::2]])
        results = Path(results_dir)
        specs = expand_grid(cfg, results / "runs")
        # Collectives of the default group time out after 10 s: the main process's evaluation
        # (15 s in slow-once) must not be waited for in one.
        accelerator = Accelerator(cpu=True, kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(seconds=10))])
        counts = run_grid(specs, accelerator, results, Path("data"), results / "cache", wait_timeout_h=0.5)
        state = {"counts": counts, "models": len(accelerator._models),
                 "optimizers": len(accelerator._optimizers), "dataloaders": len(accelerator._dataloaders)}
        (results / f"rank{accelerator.process_index}.json").write_text(json.dumps(state))

    debug_launcher(grid, args=(sys.argv[1], sys.argv[2:]), num_processes=2)
"""


def test_a_failure_on_one_process_fails_the_run_everywhere_once_and_the_grid_goes_on(tmp_path):
    """An exception in training on process 1 only, a NaN on process 1 only, an exception in the
    main process's evaluation, and an evaluation longer than the collective timeout: each run
    is recorded once, FAILED with its reason where it failed, and both processes go on together
    with the same counts and no model, optimizer or loader left in the accelerator."""
    results = tmp_path / "results"
    results.mkdir()
    launch(FAILURES, str(results), *TINY, timeout=420)
    runs = runs_by_key(results)
    assert sorted(runs) == sorted((m, s) for m in ("byol", "fail-train-rank1", "nan-rank1", "random-init")
                                  for s in (0, 1))
    assert all(len(v) == 1 for v in runs.values()), {k: len(v) for k, v in runs.items()}
    status = {k: v[0]["status"] for k, v in runs.items()}
    assert status == {("byol", 0): "FAILED", ("byol", 1): "COMPLETED",
                      ("fail-train-rank1", 0): "FAILED", ("fail-train-rank1", 1): "FAILED",
                      ("nan-rank1", 0): "FAILED", ("nan-rank1", 1): "FAILED",
                      ("random-init", 0): "COMPLETED", ("random-init", 1): "COMPLETED"}
    trace = {k: "".join(v[0].get("fail_trace") or []) for k, v in runs.items()}
    assert "process 0: ValueError: injected evaluation failure" in trace[("byol", 0)]
    assert "process 1: RuntimeError: injected failure on rank 1" in trace[("fail-train-rank1", 0)]
    assert "NonFiniteLoss" in trace[("nan-rank1", 1)]
    for rank in (0, 1):
        state = json.loads((results / f"rank{rank}.json").read_text())
        assert state["counts"] == {"skipped": 0, "COMPLETED": 3, "FAILED": 5}
        assert state["models"] == state["optimizers"] == state["dataloaders"] == 0


INVARIANCE = """
    import json, sys
    from accelerate import debug_launcher

    def compare(out_path):
        import torch
        from accelerate import Accelerator
        from byol_bench.training.agreement import Agreement
        from benchmarks.step import build_method
        from byol_bench.config import load_config
        from byol_bench.method import StepContext
        from byol_bench.losses.extra_positive import select_partners, tie_break_order
        from byol_bench.training.loop import checked

        acc = Accelerator(cpu=True)
        rank, world = acc.process_index, acc.num_processes
        agreement = Agreement(world)
        # Per-sample networks (GroupNorm encoder, LayerNorm heads): any difference between one
        # and two processes comes from the cross-image terms, not from BatchNorm statistics.
        cfg = load_config(None, ["backbone.width=8", "backbone.norm=gn", "byol.heads_norm=ln",
                                 "byol.proj_hidden=32", "byol.proj_dim=16", "byol.pred_hidden=24"])
        g = torch.Generator().manual_seed(1)
        views = [torch.randn(16, 3, 12, 12, generator=g) for _ in range(2)]
        local = 16 // world
        mine = [v[rank * local:(rank + 1) * local] for v in views]
        gather = checked(acc.gather, agreement.check)
        reduce_sum = checked(lambda t: acc.reduce(t, "sum"), agreement.check)
        report = {}
        methods = {"byol-ccsl": {"theta_pos": 0.3, "theta_neg": 0.0}, "byol-cssl": {"theta_pos": 0.3, "theta_neg": 0.0},
                   "byol-tracin": {"warmup_frac": 0.0}, "byol-nn": {"warmup_frac": 0.0}}
        for name, options in methods.items():
            runs = {}
            for mode in ("one", "two"):
                torch.manual_seed(0)
                method = build_method(name, cfg, 3, options)
                params = [p for p in method.online.parameters()]
                if mode == "one":
                    ctx = StepContext(0, 3, 10, 1, seed=7)
                    batch = views
                else:
                    ctx = StepContext(0, 3, 10, 1, rank=rank, world_size=world, gather=gather,
                                      reduce_sum=reduce_sum, seed=7)
                    batch = mine
                loss, _ = method.training_step(method.online, batch, ctx)
                grads = torch.autograd.grad(loss, params)
                logs = method.epoch_logs(reduce_sum if mode == "two" else (lambda t: t))
                if mode == "two":  # what DDP trains on: the mean over processes
                    loss = acc.reduce(loss.detach(), "mean")
                    grads = [acc.reduce(g_.contiguous(), "mean") for g_ in grads]
                partners = None
                if hasattr(method, "partner_scores"):
                    out = method.forward_views(method.online, *batch)
                    scores, _ = method.partner_scores(out, ctx)
                    order = tie_break_order(scores.shape[1], ctx.seed, ctx.step)
                    partners = select_partners(scores, ctx.rank * batch[0].shape[0], order)
                    if mode == "two":
                        partners = acc.gather(partners)
                    partners = partners.tolist()
                runs[mode] = {"loss": float(loss), "grad_norms": [float(x.norm()) for x in grads],
                              "grads": torch.cat([x.flatten() for x in grads]).tolist(), "logs": logs,
                              "partners": partners}
            report[name] = runs
        if rank == 0:
            with open(out_path, "w") as f:
                json.dump(report, f)

    debug_launcher(compare, args=(sys.argv[1],), num_processes=2)
"""


def test_cross_image_losses_partners_and_gradients_do_not_depend_on_the_process_count(tmp_path):
    """The same global batch of 16 on one process and split over two: the loss DDP trains on
    (the mean over processes), its averaged gradient, the chosen partners (TracIn, NN) and the
    pseudo-label fractions (CCSL, CSSL) are equal to float tolerance."""
    import numpy as np

    out = tmp_path / "report.json"
    launch(INVARIANCE, str(out))
    report = json.loads(out.read_text())
    for name, runs in report.items():
        one, two = runs["one"], runs["two"]
        assert np.isclose(one["loss"], two["loss"], rtol=1e-5, atol=1e-6), (name, one["loss"], two["loss"])
        np.testing.assert_allclose(two["grads"], one["grads"], rtol=1e-4, atol=1e-6, err_msg=name)
        assert one["partners"] == two["partners"], name
        assert set(one["logs"]) == set(two["logs"]), name
        for key in one["logs"]:
            assert np.isclose(one["logs"][key], two["logs"][key], rtol=1e-5), (name, key)
    # The pseudo-labels found pairs, so the CCSL/CSSL comparison is not between two empty sets.
    assert report["byol-ccsl"]["one"]["logs"]["ccsl/pos_fraction"] > 0


SYNC_BN_FINETUNE = """
    import sys
    from accelerate import debug_launcher

    def finetune_on_main(_):
        import numpy as np
        import torch
        from accelerate import Accelerator
        from byol_bench.training.agreement import Agreement
        from benchmarks.step import build_method
        from byol_bench.config import load_config
        from byol_bench.data import load_dataset
        from byol_bench.evaluation.finetune import finetune
        from byol_bench.models.sync_batchnorm import revert_sync_batchnorm

        acc = Accelerator(cpu=True)
        agreement = Agreement(acc.num_processes)
        cfg = load_config("configs/smoke.yaml", ["backbone.width=4", "eval.finetune.epochs=1"])
        torch.manual_seed(0)
        method = build_method("byol", cfg, 1)
        method.convert_sync_batchnorm()  # as training does with several CUDA processes
        assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in method.target.modules())
        if acc.is_main_process:
            encoder = revert_sync_batchnorm(method.encoder)
            assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in encoder.modules())
            data = load_dataset("digits", "data", 16)
            finetune(encoder, data, np.arange(64), cfg, 0, acc.device, lambda scores: 0.0)
        agreement.check()

    debug_launcher(finetune_on_main, args=(None,), num_processes=2)
"""


def test_main_only_fine_tuning_of_a_sync_batchnorm_encoder_completes(tmp_path):
    """Item 1 of issue 8: the encoder trained with SyncBatchNorm is fine-tuned on the main
    process alone. Fine-tuning the SyncBatchNorm modules themselves would all_gather with a
    process that is not there (a hang on CUDA; on CPU SyncBatchNorm refuses to run at all)."""
    launch(SYNC_BN_FINETUNE, timeout=180)
