"""The training loop every method shares: read top to bottom, nanoGPT-style.

One loop for SSL pretraining and the supervised reference. Accelerate does devices, DDP and
mixed precision; the loop only asks the method for a loss and calls its post-step hook.
"""
from __future__ import annotations

import math
import signal
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from byol_bench.data import LoadedDataset
from byol_bench.losses.ema import ema_tau
from byol_bench.method import Method, StepContext
from byol_bench.models.sync_batchnorm import sync_batchnorm_wanted
from byol_bench.training import preemption
from byol_bench.training.agreement import Agreement
from byol_bench.training.augment import BatchedViewAugment, Normalize
from byol_bench.training.checkpointing import Checkpointing, generator_state, process_resume
from byol_bench.training.loader import make_loader, make_views
from byol_bench.training.optim import build_optimizer, lr_schedule
from byol_bench.training.preemption import Preempted
from byol_bench.training.speed import apply_speed_settings
from byol_bench.training.step_log import StepLog, total_grad_norm


class NonFiniteLoss(RuntimeError):
    """Training diverged; the run is recorded as FAILED with this message."""


@dataclass
class TrainStats:
    img_per_s: float = 0.0
    seconds: float = 0.0
    steps: int = 0
    epoch_loss: list[float] = field(default_factory=list)


def train_step(method: Method, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               accelerator: Accelerator, views: list[torch.Tensor], ctx: StepContext, lr: float,
               max_grad_norm: float = 0.0, check: Callable[[], None] = lambda: None,
               grad_norm: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor | None]:
    """One optimisation step: loss, backward, (clip), optimizer, the method's post-step hook (EMA).
    Returns the detached loss, the method's logs and, with `grad_norm` or clipping, the total
    gradient norm before clipping (a device tensor); no host sync. benchmarks.step times it.

    `check` meets the other processes before the backward (byol_bench.training.agreement): a loss that
    raised elsewhere stops every process here, not in DDP's gradient all-reduce. A step the
    fp16 GradScaler skipped (inf/NaN gradients) leaves the EMA target and `ctx.step` as they
    were: nothing was learned, so the schedules do not advance either."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    with accelerator.autocast():
        loss, logs = method.training_step(model, views, ctx)
    check()
    accelerator.backward(loss)
    norm = None
    if max_grad_norm > 0:
        norm = accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
    elif grad_norm:
        # Read-only on the gradients; fp16's scaled ones are unscaled first, as step() would.
        accelerator.unscale_gradients(optimizer)
        norm = total_grad_norm(model.parameters())
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if not accelerator.optimizer_step_was_skipped:  # only fp16 skips; the scaler synced already
        method.after_optimizer_step(ctx)
        ctx.step += 1
    return loss.detach(), logs, norm


def schedule_figures(method: Method, step: int, ctx: StepContext) -> dict[str, float]:
    """Host-side figures of optimizer step `step` for the step-level log, from the schedules
    alone (no device work): the target momentum tau of a method with an EMA target. BYOL's family
    keeps its schedule in `tau_schedule` and `tau_base` (methods/byol.py); it is read here rather
    than declared by a new method hook, so that no method file, and so no stored run, changes."""
    if not hasattr(method, "tau_base"):
        return {}
    return {"tau": ema_tau(method.tau_schedule, step, ctx.total_steps, method.tau_base)}


def checked(fn: Callable[[torch.Tensor], torch.Tensor], check: Callable[[], None]
            ) -> Callable[[torch.Tensor], torch.Tensor]:
    """`fn` (a collective) preceded by a check, so a failure elsewhere raises instead of hanging."""
    def run(t: torch.Tensor) -> torch.Tensor:
        check()
        return fn(t)
    return run


def train(method: Method, data: LoadedDataset, cfg: dict, accelerator: Accelerator, seed: int,
          log_scalar: Callable[[str, float, int], None], agreement: Agreement | None = None,
          checkpointing: Checkpointing | None = None, log_step: Callable[[dict, int], None] | None = None,
          log_every_steps: int = 50, epoch_end: Callable[[int], dict[str, float]] | None = None) -> TrainStats:
    """Pretrain `method` on the dataset's pretraining images (or train labels for supervised).

    `log_step(values, step)` (a tracker's log; every process passes one or none) gets the
    step-level figures every `log_every_steps` optimizer steps (byol_bench.training.step_log);
    `epoch_end(epoch)` returns per-epoch figures (the collapse signal, kNN), logged with
    `log_scalar` and `log_step`. Neither changes what is learned.

    With `checkpointing`, a checkpoint is written at the end of the first epoch after
    `every_s` seconds, and at the next step after a preemption signal (then `Preempted` is
    raised); with `checkpointing.resume`, training continues exactly where that state was."""
    stats = TrainStats()
    if not method.trains or cfg["pretrain"]["epochs"] <= 0:
        return stats
    check = agreement.check if agreement is not None else (lambda stop=False, confirm_claim=False: stop)
    pre = cfg["pretrain"]
    loader = make_loader(method, data, cfg, accelerator, seed)
    shuffle_gen = loader.generator  # shuffles each epoch: its state at an epoch's start is saved
    labelled = loader.dataset.labels is not None  # supervised: targets; SSL: monitoring only
    if sync_batchnorm_wanted(accelerator):
        method.convert_sync_batchnorm()  # online and target alike
    method.to(accelerator.device)
    channels_last = apply_speed_settings(method, pre)  # NHWC and torch.compile, both opt-in
    normalize = Normalize(data.card.mean, data.card.std).to(accelerator.device)
    augments, generators = None, None
    if cfg["augment"]["backend"] == "batched":
        size = data.images["train"].shape[-1]
        augments = [BatchedViewAugment(cfg["augment"], size, data.card.channels, v) for v in range(method.views)]
        stream = seed * 1000 + accelerator.process_index
        on_cpu = accelerator.device.type == "cpu"  # one CPU generator serves both there
        generators = (torch.Generator(accelerator.device).manual_seed(stream),
                      None if on_cpu else torch.Generator().manual_seed(stream))
    resume = checkpointing.resume if checkpointing is not None else None
    if resume is not None:
        method.load_networks(resume["networks"])
    optimizer = build_optimizer(method.online, pre)
    model, optimizer, loader = accelerator.prepare(method.online, optimizer, loader)
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        # No buffer broadcast at each forward: evaluation reads the main process's BatchNorm
        # statistics either way, and a forward without collectives cannot hang on a process
        # that failed before it (SyncBatchNorm, on CUDA, still all_gathers in the forward).
        model.broadcast_buffers = False
    steps_per_epoch = len(loader)
    total = pre["epochs"] * steps_per_epoch
    lr_at = lr_schedule(pre, steps_per_epoch)  # step -> LR: warmup_cosine or step
    multi = accelerator.num_processes > 1
    gather = checked(accelerator.gather, check) if multi else (lambda t: t)
    reduce_sum = checked(lambda t: accelerator.reduce(t, "sum"), check) if multi else (lambda t: t)
    ctx = StepContext(epoch=0, step=0, total_steps=total, total_epochs=pre["epochs"],
                      rank=accelerator.process_index, world_size=accelerator.num_processes,
                      gather=gather, reduce_sum=reduce_sum, seed=seed)
    start_epoch, skip, images_seen, elapsed = 0, 0, 0, 0.0
    partial: dict | None = None
    if resume is not None:
        optimizer.load_state_dict(resume["optimizer"])
        if accelerator.scaler is not None and resume.get("scaler"):
            accelerator.scaler.load_state_dict(resume["scaler"])
        ctx.step, start_epoch, skip = resume["step"], resume["epoch"], resume["batch"]
        images_seen, elapsed = resume["images_seen"], resume["seconds"]
        stats.epoch_loss = list(resume["epoch_loss"])
        # This process's own streams and sums, by process index (fresh ones for a process the
        # checkpoint has none for: another process count, said in one line).
        mine = process_resume(resume, accelerator.process_index, accelerator.num_processes)
        if mine.notice is not None and accelerator.is_main_process:
            tqdm.write(mine.notice)
        if mine.own is not None:
            torch.set_rng_state(mine.own["rng"]["torch"])
            if torch.cuda.is_available() and mine.own["rng"].get("cuda") is not None:
                torch.cuda.set_rng_state_all(mine.own["rng"]["cuda"])
            for gen, state in zip(generators or (), mine.own["rng"]["augment"]):
                if gen is not None:
                    gen.set_state(state)
            method.load_running_state(mine.own["method"])
        shuffle_gen.set_state(mine.loader_epoch_start)
        partial = mine.partial
        for name, value, step in resume["curves"]:
            log_scalar(name, value, step)

    def shared_state_at(epoch: int, batch: int) -> dict:
        """What every process has alike (the main process's copy is saved)."""
        return {"networks": method.network_states(), "optimizer": optimizer.state_dict(),
                "scaler": accelerator.scaler.state_dict() if accelerator.scaler is not None else None,
                "step": ctx.step, "epoch": epoch, "batch": batch, "images_seen": images_seen,
                "seconds": elapsed + time.perf_counter() - start, "epoch_loss": list(stats.epoch_loss)}

    def own_state_at(epoch_start, loss_sum, log_sums) -> dict:
        """What this process has of its own: saved per process, resumed by process index."""
        return {"rng": {"torch": torch.get_rng_state(),
                        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                        "augment": [generator_state(g) for g in (generators or ())],
                        "loader_epoch_start": epoch_start},
                "method": method.running_state(),
                "partial": {"loss_sum": loss_sum, "log_sums": dict(log_sums)}}

    step_log = StepLog(log_every_steps, log_step, lambda t: reduce_sum(t) / accelerator.num_processes) \
        if log_step is not None else None
    model.train()
    start = time.perf_counter()
    bar = tqdm(range(start_epoch, pre["epochs"]), desc="  epochs", leave=False,
               disable=not accelerator.is_main_process)
    for epoch in bar:
        ctx.epoch = epoch
        epoch_start = shuffle_gen.get_state()
        loss_sum = torch.zeros((), device=accelerator.device)
        log_sums: dict[str, torch.Tensor] = {}
        if partial is not None:  # resuming inside this epoch
            loss_sum = partial["loss_sum"].to(accelerator.device)
            log_sums = {k: v.to(accelerator.device) for k, v in partial["log_sums"].items()}
            partial = None
        for index, batch in enumerate(loader):
            # Done before the checkpoint. With the batched backend fetching draws no random
            # number, so resuming is exact; the v2 backend's per-image transforms would draw.
            if index < skip:
                continue
            # A failure anywhere (data, the last step's optimizer or EMA) stops all here, and so
            # does a preemption signal on any process: all checkpoint before this batch.
            signum = preemption.requested()
            if check(signum is not None) and checkpointing is not None:
                path = checkpointing.save(shared_state_at(epoch, index),
                                          own_state_at(epoch_start, loss_sum, log_sums))
                raise Preempted(signum or signal.SIGTERM, path)
            *views, labels_or_index = batch
            views = make_views(views, augments, normalize, generators)
            if channels_last:
                views = [v.contiguous(memory_format=torch.channels_last) for v in views]
            ctx.labels = labels_or_index if labelled else None
            lr = lr_at(ctx.step)
            loss, logs, norm = train_step(method, model, optimizer, accelerator, views, ctx, lr,
                                          pre["max_grad_norm"], check, grad_norm=step_log is not None)
            images_seen += views[0].shape[0] * accelerator.num_processes
            loss_sum += loss.float()
            for k, v in logs.items():
                log_sums[k] = log_sums.get(k, 0.0) + v.float()
            if step_log is not None:
                step_log.add(loss, logs, norm, views[0].shape[0] * accelerator.num_processes)
                if step_log.due(ctx.step):
                    step_log.flush(ctx.step, {"lr": lr, **schedule_figures(method, ctx.step - 1, ctx)})
        skip = 0
        # One reduction and one host sync per epoch: the figures of every process, averaged
        # (equal batches per process), so the loss check and the logs are the global batch's.
        names = sorted(log_sums)
        figures = torch.stack([loss_sum, *(log_sums[k] for k in names)]) / steps_per_epoch
        figures = (reduce_sum(figures) / accelerator.num_processes).tolist()
        epoch_loss = figures[0]
        if not math.isfinite(epoch_loss):
            raise NonFiniteLoss(f"non-finite training loss ({epoch_loss}) in epoch {epoch + 1}")
        stats.epoch_loss.append(epoch_loss)
        log_scalar("train/loss", epoch_loss, epoch + 1)
        for k, v in zip(names, figures[1:]):
            log_scalar(f"train/{k}", v, epoch + 1)
        epoch_figures = {f"train/{k}": v for k, v in method.epoch_logs(reduce_sum).items()}
        for k, v in epoch_figures.items():
            log_scalar(k, v, epoch + 1)
        monitored = epoch_end(epoch) if epoch_end is not None else {}
        for k, v in monitored.items():
            log_scalar(k, v, epoch + 1)
        if log_step is not None:  # the tracker's x axis is the optimizer step throughout
            log_step({"epoch": epoch + 1, "epoch/loss": epoch_loss,
                      **{f"epoch/{k}": v for k, v in zip(names, figures[1:])},
                      **{k.replace("train/", "epoch/", 1): v for k, v in epoch_figures.items()},
                      **monitored}, ctx.step)
        bar.set_postfix(loss=f"{epoch_loss:.4f}")
        last_epoch = epoch + 1 == pre["epochs"]
        # Due on any process: all of them checkpoint (each sends its own streams to the main one);
        # a claim taken over meanwhile (read now) stops every process here, before it writes.
        if checkpointing is not None and not last_epoch and check(checkpointing.due(), confirm_claim=True):
            checkpointing.save(shared_state_at(epoch + 1, 0),
                               own_state_at(shuffle_gen.get_state(), torch.zeros(()), {}))
    stats.seconds = elapsed + time.perf_counter() - start
    stats.steps = ctx.step
    stats.img_per_s = images_seen / stats.seconds if stats.seconds > 0 else 0.0
    return stats
