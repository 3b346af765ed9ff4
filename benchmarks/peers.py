"""Our BYOL step against lightly's on identical work; a peer check, outside the product.

    pip install -e ".[peers]"     # lightly (it pulls pytorch_lightning, hydra-core, torchmetrics)
    python -m benchmarks.peers --batch-size 256 --pairs 4 [--device cuda] [--set pretrain.compile=true]

The work (both programs): torchvision ResNet-18 with a 3x3 stride-1 stem and no max-pool, 3 x
`--image-size` px, batch `--batch-size`, projector 512-4096-256 and predictor 256-4096-256
(Linear, BatchNorm, ReLU, Linear), SGD with momentum 0.9 and no weight decay, fp32, the same
synthetic views (two `randn` batches), the EMA target updated after every step.

- Ours: BYOL built as a run builds it (benchmarks.step.build: registry, config, Accelerate's
  prepare) and stepped by the training loop's own `train_step`; `--set` adds config overrides
  (e.g. `pretrain.channels_last=true`, `pretrain.compile=true`).
- lightly's: the BYOL of lightly's own example (examples/pytorch/byol.py), from its modules:
  BYOLProjectionHead, BYOLPredictionHead, deactivate_requires_grad, update_momentum,
  NegativeCosineSimilarity, cosine_schedule; each view through the networks as a batch of B,
  `torch.optim.SGD(model.parameters(), ...)`. Its loss is -cos (ours 2 - 2 cos summed over both
  directions): another scale, the same work.

After `--warmup` untimed steps each, the two take turns for `--pairs` pairs, who goes first
alternating, and every pair is printed. `ratio` = our img/s / lightly's = lightly's step time /
ours in the same pair; the summary gives its median and each program's median step and phases
(benchmarks.phases: on CPU every step is marked, at no cost; on CUDA only with `--phases`, since
each mark synchronizes, and then the pairs' times include those syncs for both).
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from contextlib import ExitStack

import torch
import torch.nn as nn
import torchvision
from accelerate import Accelerator

from benchmarks.phases import PhaseClock, instrument, medians_ms
from benchmarks.step import Bench, build, print_rows
from byol_bench.config import load_config
from byol_bench.errors import UserError
from byol_bench.training.loop import train_step


def identical_work(args) -> list[str]:
    """Our config for the shared work (see the module docstring)."""
    return ["backbone.name=resnet18", "backbone.stem=small", "byol.proj_hidden=4096", "byol.proj_dim=256",
            "byol.pred_hidden=4096", "byol.heads_norm=bn", "pretrain.optimizer=sgd", "pretrain.momentum=0.9",
            "pretrain.weight_decay=0.0", f"pretrain.lr={args.lr}", "pretrain.mixed_precision='no'",
            "pretrain.max_grad_norm=0.0", f"pretrain.batch_size={args.batch_size}", f"byol.tau_base={args.tau}",
            *args.set]


class LightlyBYOL(nn.Module):
    """lightly's example BYOL (examples/pytorch/byol.py), on our backbone's architecture."""

    def __init__(self, heads):
        super().__init__()
        resnet = torchvision.models.resnet18()
        resnet.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        resnet.maxpool = nn.Identity()
        self.backbone = nn.Sequential(*list(resnet.children())[:-1])
        self.projection_head = heads.BYOLProjectionHead(512, 4096, 256)
        self.prediction_head = heads.BYOLPredictionHead(256, 4096, 256)
        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)

    def forward(self, x):
        y = self.backbone(x).flatten(start_dim=1)
        return self.prediction_head(self.projection_head(y))

    def forward_momentum(self, x):
        y = self.backbone_momentum(x).flatten(start_dim=1)
        return self.projection_head_momentum(y).detach()


class Lightly:
    """lightly's BYOL and its training step, marked phase by phase on a PhaseClock."""

    def __init__(self, args, device: torch.device):
        try:
            from lightly.loss import NegativeCosineSimilarity
            from lightly.models.modules import heads
            from lightly.models.utils import deactivate_requires_grad, update_momentum
            from lightly.utils.scheduler import cosine_schedule
        except ImportError as exc:
            raise UserError(f"benchmarks.peers needs lightly ({exc}); pip install -e \".[peers]\"") from exc
        self.update_momentum, self.cosine_schedule = update_momentum, cosine_schedule
        self.model = LightlyBYOL(heads).to(device)
        deactivate_requires_grad(self.model.backbone_momentum)
        deactivate_requires_grad(self.model.projection_head_momentum)
        self.criterion = NegativeCosineSimilarity()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=args.lr, momentum=0.9)
        self.tau, self.step, self.total = args.tau, 0, args.warmup + args.pairs
        self.model.train()

    def train_step(self, views, clock: PhaseClock) -> None:
        m, x0, x1 = self.model, views[0], views[1]
        tau = self.cosine_schedule(self.step, self.total, self.tau, 1.0)
        self.update_momentum(m.backbone, m.backbone_momentum, m=tau)
        self.update_momentum(m.projection_head, m.projection_head_momentum, m=tau)
        clock.mark("EMA")
        p0 = m(x0)
        clock.mark("online forward")
        z0 = m.forward_momentum(x0)
        clock.mark("target forward")
        p1 = m(x1)
        clock.mark("online forward")
        z1 = m.forward_momentum(x1)
        clock.mark("target forward")
        loss = 0.5 * (self.criterion(p0, z1) + self.criterion(p1, z0))
        clock.mark("loss")
        loss.backward()
        clock.mark("backward")
        self.optimizer.step()
        self.optimizer.zero_grad()
        clock.mark("optimizer")
        self.step += 1


def run(args) -> list[dict]:
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda, but CUDA is not available")
    cfg = load_config(None, identical_work(args))
    accelerator = Accelerator(cpu=args.device == "cpu", mixed_precision="no")
    device = accelerator.device
    torch.manual_seed(args.seed)
    ours: Bench = build("byol", cfg, 3, accelerator, args.warmup + args.pairs)
    peer = Lightly(args, device)
    views = [torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device) for _ in range(2)]
    # Ours gets the batches as the loop hands them (NHWC with pretrain.channels_last), same values.
    our_views = [v.contiguous(memory_format=torch.channels_last) for v in views] if ours.channels_last else views
    marked = device.type == "cpu" or args.phases
    clock = PhaseClock(cuda=device.type == "cuda" and marked)

    def step_ours() -> dict:
        clock.start()
        train_step(ours.method, ours.model, ours.optimizer, accelerator, our_views, ours.ctx, ours.lr)
        return clock.stop()

    def step_lightly() -> dict:
        clock.start()
        peer.train_step(views, clock)
        return clock.stop()

    def timed(step) -> dict:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        phases = step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return {"seconds": time.perf_counter() - start, "phases": phases}

    with ExitStack() as stack:
        if marked:  # hooks in place for the whole run: a compiled forward is not re-traced for them
            stack.enter_context(instrument(clock, ours.model, ours.method.target, accelerator, ours.optimizer,
                                           ours.method))
        return alternate(args, step_ours, step_lightly, timed, marked)


def alternate(args, step_ours, step_lightly, timed, marked: bool) -> list[dict]:
    """Warm-up, then `args.pairs` pairs, who goes first alternating; one row per pair and per
    program, then the summary."""
    device = "cuda" if args.device == "cuda" else "cpu"
    for _ in range(args.warmup):
        step_ours(), step_lightly()
    rows, steps = [], {"ours": [], "lightly": []}
    programs = {"ours": step_ours, "lightly": step_lightly}
    for i in range(args.pairs):
        order = ("ours", "lightly") if i % 2 == 0 else ("lightly", "ours")
        got = {name: timed(programs[name]) for name in order}
        for name in order:
            steps[name].append(got[name])
        row = {"pair": i + 1, "first": order[0],
               "ours_img_per_s": round(args.batch_size / got["ours"]["seconds"], 2),
               "lightly_img_per_s": round(args.batch_size / got["lightly"]["seconds"], 2),
               "ratio": round(got["lightly"]["seconds"] / got["ours"]["seconds"], 4)}
        print(f"pair {i + 1}/{args.pairs}: {json.dumps(row)}", file=sys.stderr, flush=True)
        rows.append(row)
    for name, got in steps.items():
        step_s = statistics.median(g["seconds"] for g in got)
        rows.append({"program": name, "img_per_s": round(args.batch_size / step_s, 2),
                     "step_ms": round(1e3 * step_s, 1),
                     "phases_ms": medians_ms([g["phases"] for g in got]) if marked else None})
    rows.append({"ratio_median": round(statistics.median(r["ratio"] for r in rows[:args.pairs]), 4),
                 "pairs": args.pairs, "batch_size": args.batch_size, "image_size": args.image_size,
                 "device": device, "threads": torch.get_num_threads(), "set": args.set})
    return rows


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.peers", description=__doc__.split("\n\n")[0])
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--pairs", type=int, default=4, help="timed pairs: one step of each program")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps of each program first")
    p.add_argument("--lr", type=float, default=0.06, help="SGD learning rate, both (lightly's example: 0.06)")
    p.add_argument("--tau", type=float, default=0.996, help="EMA momentum at step 0, both (cosine to 1)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--phases", action="store_true", help="CUDA: mark phases too (synchronizes at each mark)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override of OUR config only (repeatable), e.g. pretrain.compile=true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    bad = args.pairs < 1 or args.warmup < 0 or args.batch_size < 2 or args.image_size < 8
    return print_rows(run, args, "need --pairs >= 1, --warmup >= 0, --batch-size >= 2 and --image-size >= 8"
                      if bad else None)


if __name__ == "__main__":
    sys.exit(main())
