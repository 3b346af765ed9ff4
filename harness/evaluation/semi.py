"""Semi-supervised protocol: fine-tune encoder + linear head on p% of the labelled train split.

For each p in `eval.semi.fractions` (default 1, 10, 100; Zeng et al. evaluate label fractions,
the exact values per dataset are set in configs/medical-paper.yaml), a stratified subset is
drawn from the run seed alone (at least one image per class), so every method sees the same
labels at a given seed. The epoch is chosen on val; test is scored once. Keys: semi<p>/<metric>.
"""
from __future__ import annotations

from byol_bench.evaluation.context import PROTOCOLS, EvalContext
from byol_bench.evaluation.finetune import finetune, predict, stratified_subset
from byol_bench.training.augment import Normalize


def finetune_and_score(ctx: EvalContext, name: str, train_idx) -> dict[str, float]:
    """Fine-tune on train[train_idx], select the epoch on val, score test once as `name`."""
    device = ctx.accelerator.device
    model, val_score, epoch = finetune(
        ctx.encoder, ctx.data, train_idx, ctx.cfg, ctx.seed, device,
        lambda scores: ctx.val_metrics(scores)[ctx.primary_metric])
    ctx.info[ctx.prefix + name] = {"epoch": epoch, f"val_{ctx.primary_metric}": val_score,
                                   "n_labelled": int(len(train_idx))}
    normalize = Normalize(ctx.data.card.mean, ctx.data.card.std).to(device)
    scores = predict(model, ctx.data.images["test"], normalize, ctx.cfg["eval"]["batch_size"], device)
    return ctx.score_test(name, scores)


@PROTOCOLS.register("semi", description="fine-tune on p% stratified labels (p from eval.semi.fractions); epoch chosen on val")
def semi_supervised(ctx: EvalContext) -> dict[str, float]:
    result = {}
    for percent in ctx.cfg["eval"]["semi"]["fractions"]:
        idx = stratified_subset(ctx.labels("train"), float(percent), ctx.seed)
        result.update(finetune_and_score(ctx, f"semi{float(percent):g}", idx))
    return result
