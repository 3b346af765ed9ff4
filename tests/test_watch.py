"""Watch a run (issue 16): a tracker per run under <results>/tensorboard/<run id>-<run hash>/,
step-level figures at exactly the multiples of run.log_every_steps with one host sync each,
the per-epoch collapse signal (normalised std, RankMe) and kNN on val, and none of it changes
what is learned."""
import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from accelerate import Accelerator
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.overrides import TorchFunctionMode

from byol_bench.cli import main
from byol_bench.config import DEFAULTS
from byol_bench.data.card import DatasetCard
from byol_bench.data.dataset import LoadedDataset
from byol_bench.plan.run_config import method_config
from byol_bench.run.build import build_method
from byol_bench.run.monitoring import epoch_monitor
from byol_bench.run.tracking import TRACKER_NEEDS
from byol_bench.training.loop import train
from byol_bench.training.monitor import RANKME_EPS, collapse_figures, normalized_std, rankme

ROOT = Path(__file__).resolve().parents[1]
EVERY = 3
SMOKE = ["--config", str(ROOT / "configs/smoke.yaml"), "--methods", "byol", "--seeds", "1",
         "--protocols", "knn", "--set", "backbone.width=4", "--set", "byol.proj_hidden=16",
         "--set", "byol.pred_hidden=16", "--set", "byol.proj_dim=8", "--set", "pretrain.epochs=2",
         "--set", "pretrain.batch_size=32", "--set", "data.train_subsample=200",
         "--set", f"run.log_every_steps={EVERY}", "--set", "run.monitor_knn_every=2"]


# --- the maths, against a brute-force reference ---------------------------------------------

def rankme_numpy(z: np.ndarray) -> float:
    sigma = np.linalg.svd(z.astype(np.float64), compute_uv=False)
    p = sigma / sigma.sum() + RANKME_EPS
    return float(np.exp(-(p * np.log(p)).sum()))


def std_numpy(z: np.ndarray) -> float:
    z = z.astype(np.float64)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    return float(np.mean([np.sqrt(np.mean((z[:, j] - z[:, j].mean()) ** 2)) for j in range(z.shape[1])]))


def test_collapse_figures_match_numpy_and_golden_values():
    z = torch.randn(64, 12, generator=torch.Generator().manual_seed(0))
    assert normalized_std(z) == pytest.approx(std_numpy(z.numpy()), rel=1e-12)
    assert rankme(z) == pytest.approx(rankme_numpy(z.numpy()), rel=1e-12)
    eye = torch.eye(4)  # 4 equal singular values: rank 4; rows e_i: per-dim std sqrt(3)/4
    assert rankme(eye) == pytest.approx(4.0, abs=1e-5)
    assert normalized_std(eye) == pytest.approx(math.sqrt(3) / 4, rel=1e-12)


def test_collapsed_output_reads_0_and_1_and_a_healthy_one_1_over_sqrt_d_and_large():
    d = 64
    constant = torch.ones(512, d) * torch.linspace(-1, 2, d)  # every image the same vector
    assert normalized_std(constant) == pytest.approx(0.0, abs=1e-9)
    assert rankme(constant) == pytest.approx(1.0, abs=1e-3)
    healthy = torch.randn(512, d, generator=torch.Generator().manual_seed(1))
    assert normalized_std(healthy) == pytest.approx(1 / math.sqrt(d), rel=0.05)
    assert rankme(healthy) > 0.8 * d


class Constant(nn.Module):
    """A deliberately collapsed encoder: the same output whatever the image."""
    def __init__(self, d):
        super().__init__()
        self.out = nn.Parameter(torch.randn(d))

    def forward(self, x):
        return self.out.expand(x.shape[0], -1) * 1.0


def test_collapse_figures_of_a_collapsed_and_a_random_network():
    images = torch.randn(256, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    collapsed = Constant(32)
    figures = collapse_figures(collapsed, nn.Identity(), images)
    assert figures["monitor/proj_std"] == pytest.approx(0.0, abs=1e-7)
    assert figures["monitor/rankme"] == pytest.approx(1.0, abs=1e-3)
    torch.manual_seed(3)
    random_net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 32))
    figures = collapse_figures(random_net, nn.Identity(), images)
    assert figures["monitor/proj_std"] == pytest.approx(1 / math.sqrt(32), rel=0.2)
    assert figures["monitor/rankme"] > 25
    assert random_net.training  # the mode it had is given back


# --- a real smoke run, read back from TensorBoard's event files -----------------------------

@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    results = tmp_path_factory.mktemp("watch")
    assert main([*SMOKE, "--results-dir", str(results)]) == 0
    (run,) = (results / "runs").glob("[0-9]*")
    return results, run


def test_tensorboard_shows_step_figures_at_the_interval_and_epoch_figures(smoke):
    results, run = smoke
    config = json.loads((run / "config.json").read_text())
    info = json.loads((run / "info.json").read_text())
    (folder,) = (results / "tensorboard").iterdir()
    assert folder.name == f"{run.name}-{config['run_hash']}"
    events = EventAccumulator(str(folder))
    events.Reload()
    scalars = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    total = info["pretrain_steps"]
    multiples = list(range(EVERY, total + 1, EVERY))
    for tag in ("step/loss", "step/loss/byol", "step/lr", "step/tau", "step/grad_norm", "step/img_per_s"):
        assert [s for s, _ in scalars[tag]] == multiples, tag
        assert all(math.isfinite(v) for _, v in scalars[tag]), tag
    assert all(v > 0 for _, v in scalars["step/grad_norm"] + scalars["step/img_per_s"])
    assert [v for _, v in scalars["step/tau"]] == sorted(v for _, v in scalars["step/tau"])  # cosine: rises
    assert all(0.99 <= v <= 1.0 for _, v in scalars["step/tau"])
    # per epoch, at the optimizer step that ends it; the same figures as Sacred's curves
    per_epoch = total // 2
    metrics = json.loads((run / "metrics.json").read_text())
    for tag in ("monitor/proj_std", "monitor/rankme", "monitor/rankme_proj"):
        assert [s for s, _ in scalars[tag]] == [per_epoch, total], tag
        assert [v for _, v in scalars[tag]] == pytest.approx(metrics[tag]["values"], rel=1e-6)
        assert metrics[tag]["steps"] == [1, 2]
    assert [s for s, _ in scalars["monitor/knn_val_accuracy"]] == [total]  # every 2nd epoch
    assert 0.0 <= metrics["monitor/knn_val_accuracy"]["values"][0] <= 1.0
    assert [v for _, v in scalars["epoch/loss"]] == pytest.approx(metrics["train/loss"]["values"], rel=1e-6)
    result = json.loads((run / "run.json").read_text())["result"]
    assert scalars["result/knn/accuracy"] == [(total, pytest.approx(result["knn/accuracy"], rel=1e-6))]


def test_a_missing_tracker_package_is_one_line_before_the_grid(tmp_path, capsys):
    import importlib.util
    missing = [name for name, (module, _) in TRACKER_NEEDS.items() if importlib.util.find_spec(module) is None]
    if not missing:
        pytest.skip("every tracker package is installed here")
    assert main([*SMOKE, "--results-dir", str(tmp_path), "--set", f"run.log_with={missing[0]}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install" in err and missing[0] in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# --- logging changes nothing learned, and syncs with the host once per interval -------------

def tiny_data() -> LoadedDataset:
    card = DatasetCard(name="tiny", loader="stl10-binary", channels=3, mean=(0.5,) * 3, std=(0.25,) * 3,
                       image_size=8, classes=("a", "b"))
    rng = np.random.default_rng(0)
    images = {s: rng.integers(0, 256, (n, 3, 8, 8), dtype=np.uint8) for s, n in (("train", 64), ("val", 32),
                                                                                  ("test", 8))}
    labels = {s: rng.integers(0, 2, len(images[s])) for s in images}
    return LoadedDataset(card=card, images=images, labels=labels, classes=["a", "b"])


def tiny_run_config() -> dict:
    cfg = copy.deepcopy(DEFAULTS)
    cfg["backbone"]["width"] = 4
    cfg["byol"].update(proj_hidden=16, pred_hidden=16, proj_dim=8)
    cfg["pretrain"].update(epochs=2, batch_size=16, warmup_epochs=0)
    rc = method_config(cfg, "byol")
    rc["data"], rc["eval"] = cfg["data"], cfg["eval"]
    return rc


class HostReads(TorchFunctionMode):
    """Counts the reads of a tensor's value by the host (each is a sync on an accelerator)."""
    READS = {"item", "tolist", "__bool__", "__float__", "__int__", "__index__", "numpy"}

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in self.READS:
            self.count += 1
        return func(*args, **(kwargs or {}))


def pretrain(watched: bool, every: int = 1):
    torch.manual_seed(0)
    rc, data = tiny_run_config(), tiny_data()
    method = build_method(rc, 3, 2, "multiclass")
    logged, accelerator = [], Accelerator(cpu=True)
    kwargs = dict(log_step=lambda values, step: logged.append((step, values)), log_every_steps=every,
                  epoch_end=epoch_monitor(method, data, rc, accelerator, knn_every=1)) if watched else {}
    with HostReads() as reads:
        train(method, data, rc, accelerator, 0, lambda *a: None, **kwargs)
    return method, logged, reads.count


def test_logging_on_gives_bit_identical_weights_to_logging_off():
    off, _, _ = pretrain(False)
    on, logged, _ = pretrain(True, every=1)
    assert [s for s, v in logged if "step/loss" in v] == list(range(1, 9))
    for name, states in (("online", (off.online.state_dict(), on.online.state_dict())),
                         ("target", (off.target.state_dict(), on.target.state_dict()))):
        for key in states[0]:
            assert torch.equal(states[0][key], states[1][key]), f"{name}.{key}"


def test_step_logging_reads_the_host_once_per_interval():
    _, _, baseline = pretrain(False)
    torch.manual_seed(0)
    rc, data = tiny_run_config(), tiny_data()
    method = build_method(rc, 3, 2, "multiclass")
    logged = []
    with HostReads() as reads:
        train(method, data, rc, Accelerator(cpu=True), 0, lambda *a: None,
              log_step=lambda values, step: logged.append(step), log_every_steps=4)
    assert logged == [4, 4, 8, 8]  # steps 4 and 8, each epoch's end (8 steps of 16 images)
    assert reads.count - baseline == 2  # 8 steps, every 4: two reads, nothing per step


def test_total_grad_norm_is_the_norm_of_all_gradients_together():
    from byol_bench.training.step_log import total_grad_norm
    a, b, c = nn.Parameter(torch.zeros(3)), nn.Parameter(torch.zeros(2, 2)), nn.Parameter(torch.zeros(1))
    a.grad, b.grad = torch.tensor([1.0, 2.0, 2.0]), torch.full((2, 2), 2.0)  # c has none
    assert total_grad_norm([a, b, c]).item() == pytest.approx(5.0)  # sqrt(9 + 16)
    assert total_grad_norm([c]).item() == 0.0


def test_monitor_every_k_epochs_and_never():
    """run.monitor_every = k: the collapse signal at the end of epochs k, 2k, ... only (the same
    figures as every epoch's at those epochs); 0 with no kNN: nothing is computed at all."""
    torch.manual_seed(0)
    rc, data = tiny_run_config(), tiny_data()
    method, accelerator = build_method(rc, 3, 2, "multiclass"), Accelerator(cpu=True)
    each, second = epoch_monitor(method, data, rc, accelerator), epoch_monitor(method, data, rc, accelerator, every=2)
    assert second(0) == {} and second(2) == {}
    assert second(1) == each(1) and set(each(0)) == {"monitor/proj_std", "monitor/rankme", "monitor/rankme_proj"}
    never = epoch_monitor(method, data, rc, accelerator, every=0)
    assert all(never(e) == {} for e in range(4))
