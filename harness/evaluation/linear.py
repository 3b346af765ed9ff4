"""Linear probe on frozen features (extracted once, no augmentation).

Features are standardised with train statistics; a linear classifier (softmax cross-entropy,
or sigmoid/BCE for multi-label) is fitted to train by full-batch L-BFGS for each weight decay in
`eval.linear.weight_decays`; the weight decay with the best validation primary metric is kept,
and only that model scores test, once. Deterministic for given features and thread count; on
CPU `eval.linear.cpu_threads` (> 0) sets the fits' threads (config.py says why).
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F

from byol_bench.evaluation.context import PROTOCOLS, EvalContext


def fit_linear(x: torch.Tensor, y: torch.Tensor, num_outputs: int, weight_decay: float,
               multilabel: bool, max_iter: int) -> torch.nn.Linear:
    """Full-batch L-BFGS on mean loss + weight_decay/2 * |W|^2 (bias not decayed)."""
    head = torch.nn.Linear(x.shape[1], num_outputs, device=x.device)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    opt = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=max_iter, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-6, tolerance_change=1e-9)

    def closure():
        opt.zero_grad()
        logits = head(x)
        loss = (F.binary_cross_entropy_with_logits(logits, y) if multilabel
                else F.cross_entropy(logits, y))
        loss = loss + 0.5 * weight_decay * head.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return head


@contextmanager
def cpu_threads(device: torch.device, threads: int):
    """torch's intra-op threads set to `threads` for the block, on CPU and when > 0; restored after."""
    if device.type != "cpu" or threads <= 0 or threads == torch.get_num_threads():
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@PROTOCOLS.register("linear", description="linear probe on frozen features; weight decay chosen on val; test scored once")
def linear_probe(ctx: EvalContext) -> dict[str, float]:
    cfg = ctx.cfg["eval"]["linear"]
    device = ctx.accelerator.device
    f_train, f_val = ctx.features("train").to(device), ctx.features("val").to(device)
    mean, std = f_train.mean(0, keepdim=True), f_train.std(0, keepdim=True).clamp_min(1e-6)
    standardise = lambda f: (f - mean) / std  # noqa: E731
    multilabel = ctx.task == "multilabel"
    y_train = torch.as_tensor(ctx.labels("train"), device=device)
    y_train = y_train.float() if multilabel else y_train.long()
    n_out = y_train.shape[1] if multilabel else ctx.data.num_classes
    x_train, x_val = standardise(f_train), standardise(f_val)
    best = None
    with cpu_threads(device, cfg["cpu_threads"]):
        for wd in cfg["weight_decays"]:
            head = fit_linear(x_train, y_train, n_out, wd, multilabel, cfg["max_iter"])
            with torch.no_grad():
                val = ctx.val_metrics(head(x_val).cpu().numpy())[ctx.primary_metric]
            if best is None or val > best[0]:
                best = (val, wd, head)
    val_score, wd, head = best
    with torch.no_grad():
        test_scores = head(standardise(ctx.features("test").to(device))).cpu().numpy()
    ctx.info[ctx.prefix + "linear"] = {"weight_decay": wd, f"val_{ctx.primary_metric}": float(val_score)}
    return ctx.score_test("linear", test_scores)
