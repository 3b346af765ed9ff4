"""Time full training steps of several methods on synthetic batches; one JSON line per method.

    python -m benchmarks.step --methods byol,byol-tracin,byol-nn,byol-ccsl,byol-cssl \\
        --backbone resnet18 --image-size 32 --batch-size 256 --steps 10 [--device cuda]

A step is `byol_bench.training.loop.train_step`, the training loop's own: forward, loss, backward,
optimizer, the method's post-step hook (BYOL's EMA). Each method is built as a run builds it
(registry, resolved options, `configure`, the config's heads, optimizer and precision), with its
extra-term warm-up OFF so the full cost is measured, and fed the same synthetic views and
monitoring labels (10% of them -1, as for unlabeled images).

Robust ratios on a noisy machine: after `--warmup` untimed steps each, the methods take turns,
one step each per round, in an order rotated every round; `step_ms` is the median over rounds and
`ratio_to_byol` the median over rounds of step / byol's step in the same round (paired, so a slow
spell of the machine cancels). On CUDA every timed step is bracketed by torch.cuda.synchronize and
`peak_mem_mb` is the method's peak allocated memory; on CPU it is the peak resident memory of the
process during the method's steps, which includes the other methods' resident models (compare
methods by difference).

`--logging-overhead` times what step-level logging (run.log_every_steps) adds to a step instead.
`extras_ms`: what a logged step adds, timed alone (the gradient norm over the model's gradients
and the on-device sums, byol_bench.training.step_log); `flush_ms`: the interval's one host read
and log; `logging_overhead_pct` = (extras + flush / every) / step, in percent. Cross-check:
each round also takes one whole step without logging and one with it, in alternating order, and
`paired_pct` is the mean over the two orders of the median ratio with / without, minus 1 (on a
shared machine its noise is far above the cost it measures).

`--phases` breaks each method's step down instead (benchmarks.phases): `phases_ms` holds the
median over rounds of online forward, target forward, loss, backward, optimizer, EMA and other,
and of the whole step (`total`); the methods take turns as above.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass

import torch
from accelerate import Accelerator

from byol_bench.config import DEFAULTS, load_config
from byol_bench.errors import UserError
from byol_bench.method import METHODS, Method, StepContext
from byol_bench.plan.run_config import method_config
from byol_bench.run.build import build_method as build_run_method
from byol_bench.training.optim import build_optimizer
from byol_bench.run.cost import PeakMemory
from byol_bench.training.loop import schedule_figures, train_step
from byol_bench.training.speed import apply_speed_settings
from byol_bench.training.step_log import StepLog, total_grad_norm

from benchmarks.phases import PhaseClock, instrument, medians_ms

NUM_CLASSES = 10
UNLABELED_FRACTION = 0.1


@dataclass
class Bench:
    """One method ready to step: the prepared model/optimizer and its own step context."""
    name: str
    method: Method
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    ctx: StepContext
    lr: float
    max_grad_norm: float
    channels_last: bool = False  # the loop makes its batches NHWC too


def build_method(name: str, cfg: dict, channels: int, options: dict | None = None,
                 num_classes: int = NUM_CLASSES) -> Method:
    """A method as a run builds it (byol_bench.plan.run_config.method_config, then
    byol_bench.run.build.build_method), with `options` over the config's method_options."""
    return build_run_method(method_config(cfg, name, options=options), channels, num_classes, "multiclass")


def build(name: str, cfg: dict, channels: int, accelerator: Accelerator, total_steps: int) -> Bench:
    cls = METHODS.get(name)
    if not cls.trains or cls.uses_labels:
        raise UserError(f"method {name!r} is a reference row; bench_step times SSL methods")
    # Measure the full cost: an extra term with a warm-up is on from step 0.
    method = build_method(name, cfg, channels, {"warmup_frac": 0.0} if "warmup_frac" in cls.options else {})
    method.to(accelerator.device)
    pre = method.cfg["pretrain"]
    channels_last = apply_speed_settings(method, pre)  # as the training loop does
    optimizer = build_optimizer(method.online, pre)
    model, optimizer = accelerator.prepare(method.online, optimizer)
    model.train()
    ctx = StepContext(epoch=0, step=0, total_steps=total_steps, total_epochs=1,
                      rank=accelerator.process_index, world_size=accelerator.num_processes,
                      gather=accelerator.gather if accelerator.num_processes > 1 else (lambda t: t))
    return Bench(name, method, model, optimizer, ctx, pre["lr"], pre["max_grad_norm"], channels_last)


def timed_step(bench: Bench, views, labels, accelerator: Accelerator, sampler: PeakMemory
               ) -> tuple[float, float]:
    """(seconds, peak memory MB) of one train_step."""
    cuda = accelerator.device.type == "cuda"
    bench.ctx.labels = labels
    if cuda:
        torch.cuda.synchronize()
    sampler.start()
    start = time.perf_counter()
    train_step(bench.method, bench.model, bench.optimizer, accelerator, views, bench.ctx, bench.lr,
               bench.max_grad_norm)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return seconds, sampler.stop()


def timed(fn, cuda: bool) -> float:
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def phase_breakdown(benches: list[Bench], views, labels, accelerator: Accelerator, rounds: int,
                    warmup: int) -> list[dict]:
    """Per method, the median time of each phase of train_step over `rounds` (see the docstring)."""
    clock = PhaseClock(accelerator.device.type == "cuda")
    steps: dict[str, list[dict]] = {b.name: [] for b in benches}

    def one(bench: Bench) -> dict:
        bench.ctx.labels = labels
        clock.start()
        train_step(bench.method, bench.model, bench.optimizer, accelerator, views, bench.ctx, bench.lr,
                   bench.max_grad_norm)
        return clock.stop()

    with ExitStack() as stack:  # hooks in place throughout: a compiled forward is not re-traced for them
        for bench in benches:  # the shared accelerator's backward is wrapped once per bench: extra marks add ~0
            stack.enter_context(instrument(clock, bench.model, getattr(bench.method, "target", None), accelerator,
                                           bench.optimizer, bench.method))
        for bench in benches:
            for _ in range(warmup):
                one(bench)
        for r in range(rounds):
            for bench in benches[r % len(benches):] + benches[:r % len(benches)]:
                steps[bench.name].append(one(bench))
            print(f"round {r + 1}/{rounds}: " + ", ".join(
                f"{n} {1e3 * sum(s[-1].values()):.0f} ms" for n, s in steps.items()), file=sys.stderr, flush=True)
    return [{"method": name, "img_per_s": round(views[0].shape[0] / (medians_ms(s)["total"] / 1e3), 2),
             "phases_ms": medians_ms(s)} for name, s in steps.items()]


def logging_overhead(bench: Bench, views, labels, accelerator: Accelerator, every: int, rounds: int,
                     warmup: int) -> dict:
    """The cost of step-level logging at interval `every` (see the module docstring)."""
    cuda = accelerator.device.type == "cuda"
    bench.ctx.labels = labels
    step_log = StepLog(every, lambda values, step: None)

    def plain():
        train_step(bench.method, bench.model, bench.optimizer, accelerator, views, bench.ctx, bench.lr,
                   bench.max_grad_norm)

    def logged():
        loss, logs, norm = train_step(bench.method, bench.model, bench.optimizer, accelerator, views, bench.ctx,
                                      bench.lr, bench.max_grad_norm, grad_norm=True)
        step_log.add(loss, logs, norm, views[0].shape[0])

    def flush():
        figures = schedule_figures(bench.method, bench.ctx.step - 1, bench.ctx)
        step_log.flush(bench.ctx.step, {"lr": bench.lr, **figures})
    params = [p for p in bench.model.parameters() if p.requires_grad]
    loss, logs = torch.zeros((), device=accelerator.device), {"loss/byol": torch.zeros((), device=accelerator.device)}

    def extras():  # what a logged step adds, alone: the gradient norm and the on-device sums
        step_log.add(loss, logs, total_grad_norm(params), views[0].shape[0])

    for _ in range(warmup):
        plain(), logged(), flush()
    ratios: dict[bool, list[float]] = {True: [], False: []}  # by order: off first or on first
    off, on, flushes, added = [], [], [], []
    for r in range(rounds):
        off_first = r % 2 == 0
        for kind in (("off", "on") if off_first else ("on", "off")):
            (off if kind == "off" else on).append(timed(plain if kind == "off" else logged, cuda))
        ratios[off_first].append(on[-1] / off[-1])
        flushes.append(timed(flush, cuda))
        for p in params:  # gradients of the model's shapes (a step sets them to None)
            p.grad = torch.ones_like(p)
        added.append(timed(extras, cuda))
        for p in params:
            p.grad = None
        print(f"round {r + 1}/{rounds}: off {1e3 * off[-1]:.1f} ms, on {1e3 * on[-1]:.1f} ms, "
              f"flush {1e3 * flushes[-1]:.2f} ms, extras {1e3 * added[-1]:.3f} ms", file=sys.stderr, flush=True)
    step_off, flush_s, added_s = statistics.median(off), statistics.median(flushes), statistics.median(added)
    # Either order's median ratio, averaged: a step's position in the pair cancels to first order.
    paired = statistics.mean(statistics.median(v) for v in ratios.values() if v) - 1
    return {"method": bench.name, "every": every, "step_ms_off": round(1e3 * step_off, 3),
            "step_ms_on": round(1e3 * statistics.median(on), 3), "extras_ms": round(1e3 * added_s, 4),
            "flush_ms": round(1e3 * flush_s, 3), "paired_pct": round(100 * paired, 3),
            "logging_overhead_pct": round(100 * (added_s + flush_s / every) / step_off, 3)}


def run(args) -> list[dict]:
    names = METHODS.select(args.methods)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    overrides = [f"backbone.name={args.backbone}", f"pretrain.batch_size={args.batch_size}", *args.set]
    cfg = load_config(args.config, overrides)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda, but CUDA is not available")
    accelerator = Accelerator(cpu=args.device == "cpu", mixed_precision=cfg["pretrain"]["mixed_precision"])
    torch.manual_seed(args.seed)
    total_steps = args.warmup + args.steps
    benches = [build(n, cfg, args.channels, accelerator, total_steps) for n in names]
    device = accelerator.device
    views = [torch.randn(args.batch_size, args.channels, args.image_size, args.image_size, device=device)
             for _ in range(2)]
    if any(b.channels_last for b in benches):  # one config for all: the loop's NHWC batches
        views = [v.contiguous(memory_format=torch.channels_last) for v in views]
    labels = torch.randint(0, NUM_CLASSES, (args.batch_size,), device=device)
    labels[torch.rand(args.batch_size, device=device) < UNLABELED_FRACTION] = -1
    sampler = PeakMemory(device)
    if args.phases:
        return phase_breakdown(benches, views, labels, accelerator, args.steps, args.warmup)
    if args.logging_overhead:
        return [logging_overhead(b, views, labels, accelerator, args.every, args.steps, args.warmup) for b in benches]

    for bench in benches:
        for _ in range(args.warmup):
            timed_step(bench, views, labels, accelerator, sampler)
    seconds = {b.name: [] for b in benches}
    peak = {b.name: 0.0 for b in benches}
    for r in range(args.steps):
        order = benches[r % len(benches):] + benches[:r % len(benches)]
        for bench in order:
            s, mb = timed_step(bench, views, labels, accelerator, sampler)
            seconds[bench.name].append(s)
            peak[bench.name] = max(peak[bench.name], mb)
        print(f"round {r + 1}/{args.steps}: " + ", ".join(f"{n} {1e3 * t[-1]:.0f} ms" for n, t in seconds.items()),
              file=sys.stderr, flush=True)

    rows = []
    for name, times in seconds.items():
        step = statistics.median(times)
        ratio = (statistics.median(t / b for t, b in zip(times, seconds["byol"]))
                 if "byol" in seconds else None)
        rows.append({"method": name, "img_per_s": round(args.batch_size / step, 2),
                     "peak_mem_mb": round(peak[name], 1), "step_ms": round(1e3 * step, 2),
                     "ratio_to_byol": None if ratio is None else round(ratio, 4)})
    return rows


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.step", description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", default="byol,byol-tracin,byol-nn,byol-ccsl,byol-cssl",
                   help="comma list or wildcards; include byol for ratio_to_byol (default: %(default)s)")
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--steps", type=int, default=10, help="timed rounds: one step of every method each")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per method first")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (0: torch's default); 1 avoids stalls on a shared CPU")
    p.add_argument("--config", help="YAML config for the heads, optimizer, precision (default: DEFAULTS)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    p.add_argument("--logging-overhead", action="store_true",
                   help="time each step with and without step-level logging instead (see above)")
    p.add_argument("--phases", action="store_true",
                   help="time each phase of the step instead: online/target forward, loss, backward, "
                        "optimizer, EMA, other (medians over rounds)")
    p.add_argument("--every", type=int, default=DEFAULTS["run"]["log_every_steps"],
                   help="--logging-overhead: the logging interval (default: run.log_every_steps, %(default)s)")
    return p


def print_rows(run, args, problem: str | None = None) -> int:
    """A timing tool's main: `run(args)`'s rows as JSON lines, exit 0; `problem` (bad arguments)
    or a UserError is one line, exit 2."""
    try:
        if problem:
            raise UserError(problem)
        rows = run(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for row in rows:
        print(json.dumps(row), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    bad = args.steps < 1 or args.warmup < 0 or args.batch_size < 2 or args.every < 1
    return print_rows(run, args, "need --steps >= 1, --warmup >= 0, --batch-size >= 2 and --every >= 1" if bad else None)


if __name__ == "__main__":
    sys.exit(main())
