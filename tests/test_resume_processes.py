"""Resume under DDP (issue 15, item 3): a checkpoint holds each process's random streams and
sums, by process index, and each process resumes its own, so a two-process run stopped by
SIGTERM and resumed ends bit-identical to an uninterrupted two-process run. A checkpoint from
another process count says so in one line and training goes on; a single-process checkpoint
written before the streams were saved per process still resumes exactly."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from bounded import deadline
from byol_bench.config import load_config
from byol_bench.data import load_dataset
from byol_bench.plan.grid import expand_grid
from byol_bench.run.build import build_method
from byol_bench.store.encoders import load_encoder
from byol_bench.training import checkpointing
from byol_bench.training.checkpointing import Checkpointing
from byol_bench.training.loop import train

ROOT = Path(__file__).resolve().parents[1]
TINY = {"backbone.width": 4, "byol.proj_hidden": 16, "byol.pred_hidden": 16, "byol.proj_dim": 8}
GRID = ["--config", "configs/smoke.yaml", "--methods", "byol", "--seeds", "1", "--protocols", "knn",
        *(a for k, v in TINY.items() for a in ("--set", f"{k}={v}")),
        "--set", "pretrain.epochs=5", "--set", "run.checkpoint_every_min=0"]


def torchrun(results: Path) -> subprocess.Popen:
    """The grid on two CPU processes (gloo), as a user starts it; its own session, so that a
    failed test can end the whole tree."""
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             "run_bench.py", *GRID, "--results-dir", str(results)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def finished(proc: subprocess.Popen) -> str:
    return proc.communicate()[1][-3000:]


def runs(results: Path) -> list[dict]:
    out = []
    for folder in sorted((results / "runs").glob("[0-9]*"), key=lambda p: int(p.name)):
        out.append({"run": json.loads((folder / "run.json").read_text()),
                    "info": json.loads((folder / "info.json").read_text()),
                    "metrics": json.loads((folder / "metrics.json").read_text())})
    return out


def encoder_state(results: Path) -> dict:
    (path,) = (results / "encoders").glob("*.safetensors")
    return load_encoder(path)["state_dict"]


@pytest.mark.multiprocess
def test_two_processes_stopped_by_sigterm_resume_bit_identical_to_an_uninterrupted_run(tmp_path):
    reference, stopped = tmp_path / "uninterrupted", tmp_path / "stopped"
    procs = []

    def end_all():
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)

    with deadline(600, end_all):
        procs += [torchrun(reference), torchrun(stopped)]  # side by side: half the wall time
        # The trigger is the first epoch's checkpoint, not a delay: on a loaded machine the
        # signal still arrives with epochs to go (each process checkpoints at the next step).
        while not list((stopped / "checkpoints").glob("*/ckpt-*.pt")):
            assert procs[1].poll() is None, f"the run ended before its first checkpoint: {finished(procs[1])}"
            time.sleep(0.05)
        procs[1].send_signal(signal.SIGTERM)  # torchrun passes it on to both processes
        err = finished(procs[1])
        assert procs[1].returncode != 0, err
        assert [r["run"]["status"] for r in runs(stopped)] == ["INTERRUPTED"], err
        assert not (stopped / "encoders").exists()
        procs.append(torchrun(stopped))  # the same command
        for proc in (procs[0], procs[2]):
            err = finished(proc)
            assert proc.returncode == 0, err

    (first,) = runs(reference)
    _, resumed = runs(stopped)  # the INTERRUPTED run, then the one that resumed it
    assert resumed["run"]["status"] == "COMPLETED"
    assert resumed["info"]["world_size"] == first["info"]["world_size"] == 2
    assert resumed["info"]["resumed_from"]["step"] > 0
    mine, theirs = encoder_state(stopped), encoder_state(reference)
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine), \
        max(float((mine[k].float() - theirs[k].float()).abs().max()) for k in mine)
    for key in ("values", "steps"):  # the curve: logged again on resume, then continued
        assert resumed["metrics"]["train/loss"][key] == first["metrics"]["train/loss"][key]
    assert resumed["run"]["result"]["knn/accuracy"] == first["run"]["result"]["knn/accuracy"]


# In-process, one CPU process: the checkpoint's per-process part as another count would leave it.

@pytest.fixture(scope="module")
def byol_run(tmp_path_factory):
    """A 2-epoch BYOL run config, its data (256 training images: 4 steps an epoch), the
    checkpoint written after its first epoch, and the encoder it ends with."""
    overrides = [f"{k}={v}" for k, v in TINY.items()] + ["pretrain.epochs=2", "benchmark.methods=[byol]"]
    cfg = load_config(str(ROOT / "configs/smoke.yaml"), overrides)
    (spec,) = expand_grid(cfg, tmp_path_factory.mktemp("runs"))
    config = spec.config
    data = load_dataset("digits", ROOT / "data", config["data"]["image_size"]).train_subset(256)
    folder = tmp_path_factory.mktemp("checkpoints")
    reference = pretrain(config, data, Checkpointing(folder, 0.0, True))
    (path,) = folder.glob("ckpt-*.pt")
    return config, data, path, reference


def load(path: Path) -> dict:
    """A fresh copy each time: a resumed optimizer and partial sums train on the loaded tensors."""
    state = torch.load(path, weights_only=True)
    assert state["epoch"] == 1 and len(state["processes"]) == 1
    return state


def pretrain(config: dict, data, saving: Checkpointing | None = None) -> dict:
    """The run's pretraining as byol_bench.run.execute does it; the encoder's state_dict."""
    set_seed(config["seed"])
    method = build_method(config, data.card.channels, data.num_classes, data.card.task)
    accelerator = Accelerator(cpu=True)
    try:
        stats = train(method, data, config, accelerator, config["seed"], lambda *logged: None, None, saving)
    finally:
        accelerator.free_memory()
    assert len(stats.epoch_loss) == config["pretrain"]["epochs"]
    return {k: v.clone() for k, v in method.encoder.state_dict().items()}


def test_a_checkpoint_of_two_processes_resumed_by_one_says_so_in_one_line_and_trains_on(byol_run, tmp_path, capsys):
    config, data, path, _ = byol_run
    checkpoint = load(path)
    (own,) = checkpoint["processes"]
    two = {**checkpoint, "processes": [own, own]}  # as two processes would have written it
    capsys.readouterr()
    pretrain(config, data, Checkpointing(tmp_path, 0.0, True, resume=two))  # both epochs' losses
    out = capsys.readouterr()
    lines = [line for line in (out.out + out.err).splitlines() if "random streams" in line]
    assert lines == [f"checkpoint at step {checkpoint['step']} holds the random streams of 2 process(es), "
                     "this run has 1: networks, optimizer and step resume, the streams of process 1 are left "
                     "unused; the result will not be bit-identical to an uninterrupted run"]


def test_a_process_the_checkpoint_has_no_streams_for_starts_fresh_ones(byol_run):
    checkpoint = load(byol_run[2])
    (own,) = checkpoint["processes"]
    first, second = (checkpointing.process_resume(checkpoint, index, 2) for index in (0, 1))
    assert first.own is own and second.own is None  # process 1: fresh streams and sums
    assert "process 1 starts fresh streams" in first.notice
    assert torch.equal(second.loader_epoch_start, own["rng"]["loader_epoch_start"])  # shared order
    same = checkpointing.process_resume(checkpoint, 0, 1)
    assert same.notice is None and same.own is own and same.partial is own["partial"]


def test_a_single_process_checkpoint_from_before_per_process_streams_still_resumes_exactly(byol_run, tmp_path):
    config, data, path, reference = byol_run
    checkpoint = load(path)
    (own,) = checkpoint["processes"]
    old = {k: v for k, v in checkpoint.items() if k != "processes"}
    old.update(rng=own["rng"], method=own["method"], partial=own["partial"])  # the earlier layout
    resumed = pretrain(config, data, Checkpointing(tmp_path, 0.0, True, resume=old))
    assert all(torch.equal(resumed[k], reference[k]) for k in reference)
