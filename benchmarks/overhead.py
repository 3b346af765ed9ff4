"""The harness's training loop against a bare PyTorch loop doing the same work; one JSON line.

    python -m benchmarks.overhead --epochs 8 [--config default] [--device cpu]

Harness: `byol_bench.training.loop.train` as a run calls it: its loader, batched augmentation,
`train_step`, agreement checks (one process), step-level logging every `run.log_every_steps`
steps into a list (no tracker backend: what a tracker does with the figures is its own cost),
per-epoch figures and the end-of-epoch collapse monitor (byol_bench.run.monitoring).
Bare: the same model (a second copy built with the same seed), the same images, the same
batched augmentation and normalisation, the same optimizer and LR schedule, in a plain loop:
DataLoader over a TensorDataset, forward of both views, BYOL loss, backward, optimizer step,
EMA update; one host read of the loss per epoch.

The two alternate epoch by epoch (harness, bare, harness, bare ...): each bare epoch runs inside
the harness's end-of-epoch callback, after the harness's own monitor, and is left out of the
harness epoch's time, so a slow spell of a shared machine hits both alike. Reported: every
pair's seconds, the medians, and `overhead_pct` = the median over pairs of harness / bare - 1
(paired), in percent. The first pair warms both up and is reported but left out of the medians.
The default is the default benchmark's model and data (configs/default.yaml: small CNN,
digits at 16 px, batch 64), where a step is small and a per-step overhead shows the way it
does on a GPU.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from byol_bench.config import load_config
from byol_bench.data import load_dataset
from byol_bench.errors import UserError
from byol_bench.losses.byol import symmetric_byol_loss
from byol_bench.losses.ema import ema_tau, update_ema
from byol_bench.plan.run_config import method_config
from byol_bench.run.build import build_method
from byol_bench.run.monitoring import epoch_monitor
from byol_bench.cli import config_source
from byol_bench.training.agreement import Agreement
from byol_bench.training.augment import BatchedViewAugment, Normalize
from byol_bench.training.loop import train
from byol_bench.training.optim import build_optimizer, lr_schedule


def run_config(config: str, overrides: list[str], epochs: int) -> tuple[dict, int]:
    """BYOL's run config for `epochs` epochs, and the config's step-log interval."""
    cfg = load_config(config_source(config), overrides)
    if cfg["augment"]["backend"] != "batched":
        raise UserError("benchmarks.overhead times the batched augmentation (augment.backend: batched)")
    rc = method_config(cfg, "byol")
    rc.update(data=cfg["data"], eval=cfg["eval"], seed=0)
    rc["pretrain"]["epochs"] = epochs
    return rc, cfg["run"]["log_every_steps"]


class BareLoop:
    """BYOL in a plain PyTorch loop over the same images, views, model and optimizer."""

    def __init__(self, rc: dict, data, accelerator: Accelerator, seed: int):
        set_seed(seed)
        self.device = accelerator.device
        self.method = build_method(rc, data.card.channels, data.num_classes, data.card.task).to(self.device)
        pre = rc["pretrain"]
        images = torch.from_numpy(data.pretrain_images(rc["data"].get("pretrain_splits", "train+unlabeled"))[:])
        self.loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(images), batch_size=pre["batch_size"], shuffle=True,
            drop_last=pre["drop_last"], generator=torch.Generator().manual_seed(seed))
        size = images.shape[-1]
        self.augments = [BatchedViewAugment(rc["augment"], size, data.card.channels, v) for v in range(2)]
        self.normalize = Normalize(data.card.mean, data.card.std).to(self.device)
        self.generators = (torch.Generator(self.device).manual_seed(seed),
                           None if self.device.type == "cpu" else torch.Generator().manual_seed(seed))
        self.optimizer = build_optimizer(self.method.online, pre)
        self.lr_at = lr_schedule(pre, len(self.loader))
        self.total = pre["epochs"] * len(self.loader)
        self.step = 0

    def epoch(self) -> float:
        online, target, b = self.method.online, self.method.target, self.method
        online.train()
        loss_sum = torch.zeros((), device=self.device)
        for (x,) in self.loader:
            x = x.to(self.device, non_blocking=True)
            v1, v2 = (self.normalize(a(x, *self.generators)) for a in self.augments)
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr_at(self.step)
            n = v1.shape[0]
            both = torch.cat([v1, v2])
            p = online.predictor(online.net(both))
            with torch.no_grad():
                z_t = target(both)
            loss, _ = symmetric_byol_loss(p[:n], p[n:], z_t[:n], z_t[n:])
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            update_ema(target, online.net, ema_tau(b.tau_schedule, self.step, self.total, b.tau_base))
            self.step += 1
            loss_sum += loss.detach()
        return float(loss_sum)


def synced(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(rc: dict, data, accelerator: Accelerator, log_every_steps: int, seed: int = 0) -> dict:
    """Alternate harness and bare epochs; every pair's seconds."""
    device = accelerator.device
    bare = BareLoop(rc, data, accelerator, seed)
    set_seed(seed)
    method = build_method(rc, data.card.channels, data.num_classes, data.card.task)
    monitor = epoch_monitor(method, data, rc, accelerator)
    pairs: list[dict] = []
    mark = [0.0]
    steps_logged: list[int] = []

    def epoch_end(epoch: int) -> dict[str, float]:
        figures = monitor(epoch)  # the harness's own end-of-epoch work, timed as the harness's
        synced(device)
        harness_s = time.perf_counter() - mark[0] if epoch > 0 else None  # epoch 0 includes set-up
        start = time.perf_counter()
        bare.epoch()
        synced(device)
        pairs.append({"harness_s": harness_s, "bare_s": time.perf_counter() - start})
        mark[0] = time.perf_counter()
        return figures

    train(method, data, rc, accelerator, seed, lambda name, value, step: None, Agreement(1),
          log_step=lambda values, step: steps_logged.append(step) if "step/loss" in values else None,
          log_every_steps=log_every_steps, epoch_end=epoch_end)
    return {"pairs": pairs, "step_logs": len(steps_logged)}


def summary(pairs: list[dict], warmup: int = 1) -> dict:
    timed = [p for p in pairs[warmup:] if p["harness_s"] is not None]
    if not timed:
        raise UserError("benchmarks.overhead needs at least 2 epochs (the first warms up)")
    harness = statistics.median(p["harness_s"] for p in timed)
    bare = statistics.median(p["bare_s"] for p in timed)
    ratio = statistics.median(p["harness_s"] / p["bare_s"] for p in timed)
    return {"harness_epoch_s": harness, "bare_epoch_s": bare, "overhead_pct": 100.0 * (ratio - 1.0),
            "pairs_timed": len(timed)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="default", help="a shipped config's name or a YAML file")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--epochs", type=int, default=8, help="pairs of epochs (the first warms up)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    try:
        rc, every = run_config(args.config, args.set, args.epochs)
        accelerator = Accelerator(cpu=args.device == "cpu")
        with tempfile.TemporaryDirectory() as cache:
            data = load_dataset(args.dataset, args.data_root, rc["data"].get("image_size") or None, cache)
        result = measure(rc, data, accelerator, every)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = {"dataset": args.dataset, "device": str(accelerator.device), "threads": torch.get_num_threads(),
           "machine": platform.processor() or platform.machine(), **summary(result["pairs"]),
           "step_logs": result["step_logs"], "pairs": result["pairs"]}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
