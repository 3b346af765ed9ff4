"""Weighted k-nearest-neighbour classifier on frozen features (Wu et al. 2018): cosine
similarity, the k nearest train features vote with weight exp(sim / T). k=20, T=0.07 by
default. Nothing is selected, so val is reported for information and test is scored once."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from byol_bench.evaluation.context import PROTOCOLS, EvalContext


def weighted_knn_scores(train: torch.Tensor, train_targets: torch.Tensor, query: torch.Tensor,
                        k: int, temperature: float, chunk: int = 1024) -> torch.Tensor:
    """Class scores (Q, C) for queries; `train_targets` is one-hot (or multi-hot) (N, C).
    For multi-label data the score is the weighted mean of the neighbours' labels."""
    train = F.normalize(train, dim=1)
    query = F.normalize(query, dim=1)
    k = min(k, train.shape[0])
    out = []
    for start in range(0, query.shape[0], chunk):
        sim = query[start:start + chunk] @ train.T
        top_sim, top_idx = sim.topk(k, dim=1)
        w = (top_sim / temperature).exp()
        votes = (w.unsqueeze(-1) * train_targets[top_idx]).sum(1)
        out.append(votes / w.sum(1, keepdim=True))
    return torch.cat(out)


@PROTOCOLS.register("knn", description="weighted kNN (k=20, cosine, T=0.07) on frozen features")
def knn_protocol(ctx: EvalContext) -> dict[str, float]:
    cfg = ctx.cfg["eval"]["knn"]
    device = ctx.accelerator.device
    y = torch.as_tensor(ctx.labels("train"), device=device)
    targets = y.float() if ctx.task == "multilabel" else F.one_hot(y.long(), ctx.data.num_classes).float()
    train = ctx.features("train").to(device)
    score = lambda split: weighted_knn_scores(  # noqa: E731
        train, targets, ctx.features(split).to(device), cfg["k"], cfg["temperature"]).cpu().numpy()
    ctx.info[ctx.prefix + "knn"] = {f"val_{ctx.primary_metric}": ctx.val_metrics(score("val"))[ctx.primary_metric]}
    return ctx.score_test("knn", score("test"))
