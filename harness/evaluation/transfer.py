"""Transfer protocol: the encoder pretrained on dataset A, evaluated on dataset B.

Pairs come from `eval.transfer.pairs` as "A->B" (e.g. "chestxray14->pneumonia"); a run on A
evaluates every B paired with it, by the protocols in
`eval.transfer.protocols`: `linear` (frozen features, as the linear protocol) and `finetune`
(all of B's labelled train split, epoch chosen on B's val). Result keys name both datasets
through the run's dataset and the key: transfer-<B>-linear/<metric>, transfer-<B>-finetune/<metric>.

Our choices: B is loaded at A's image size and converted to A's channel count (luma for
RGB -> gray, replication for gray -> RGB), and normalised with A's mean/std, the input
statistics the encoder was trained on.

A pair whose cards name a common image source (`sources`) is refused: B's images were then seen
while pretraining on A (ISIC 2019 contains HAM10000, which is DermaMNIST), so it is no transfer.
Loading B at A's size also means a low-resolution target is upsampled: a 28 px MedMNIST card
read at 224 px is an 8x blur that no pretraining image had (MedMNIST's authors advise against
it); prefer a full-resolution card (`pneumonia`, not `pneumoniamnist`, after chestxray14).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from byol_bench.data import DATASETS, LoadedDataset
from byol_bench.data.views import with_channels
from byol_bench.errors import UserError
from byol_bench.evaluation.context import PROTOCOLS, EvalContext
from byol_bench.evaluation.linear import linear_probe
from byol_bench.evaluation.semi import finetune_and_score

TRANSFER_KINDS = ("linear", "finetune")


def parse_pair(text: str) -> tuple[str, str]:
    """"A->B" -> canonical (A, B); a UserError for a malformed pair or one whose datasets share
    an image source (B would not be new to the encoder)."""
    source, sep, target = (part.strip() for part in text.partition("->"))
    if not sep or not source or not target:
        raise UserError(f"eval.transfer.pairs entry {text!r} must look like 'chestxray14->pneumonia'")
    a, b = DATASETS.canonical(source), DATASETS.canonical(target)
    shared = DATASETS.get(a).shared_sources(DATASETS.get(b))
    if shared:
        raise UserError(f"eval.transfer.pairs entry {text!r} is not a transfer: {a} and {b} share the "
                        f"image source {', '.join(shared)} (the cards' `sources`), so {b}'s images "
                        f"are seen when pretraining on {a}")
    return a, b


def check_transfer_kinds(kinds) -> None:
    """eval.transfer.protocols must name only linear and finetune."""
    bad = sorted(set(kinds) - set(TRANSFER_KINDS))
    if bad:
        raise UserError(f"eval.transfer.protocols: unknown {', '.join(bad)}; valid: {', '.join(TRANSFER_KINDS)}")


def transfer_targets(source: str, pairs: list[str]) -> list[str]:
    """Datasets B that the pairs "A->B" send dataset `source` to."""
    return [b for a, b in map(parse_pair, pairs) if a == source]


def as_source_input(target: LoadedDataset, source: LoadedDataset) -> LoadedDataset:
    """Target dataset re-expressed in the source's channels and normalisation."""
    card = dataclasses.replace(target.card, channels=source.card.channels,
                               mean=source.card.mean, std=source.card.std)
    images = {k: with_channels(v, source.card.channels) for k, v in target.images.items()}  # no full copy
    return dataclasses.replace(target, card=card, images=images)


@PROTOCOLS.register("transfer", description="pretrain on A, evaluate on B (linear and fine-tune), pairs from eval.transfer.pairs")
def transfer(ctx: EvalContext) -> dict[str, float]:
    kinds = ctx.cfg["eval"]["transfer"]["protocols"]
    check_transfer_kinds(kinds)
    result: dict[str, float] = {}
    for target in transfer_targets(ctx.data.card.name, ctx.cfg["eval"]["transfer"]["pairs"]):
        sub = ctx.on(as_source_input(ctx.load_dataset(target), ctx.data), prefix=f"transfer-{target}-")
        if "linear" in kinds:
            result.update(linear_probe(sub))
        if "finetune" in kinds:
            result.update(finetune_and_score(sub, "finetune", np.arange(len(sub.data.images["train"]))))
    return result
