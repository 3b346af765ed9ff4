"""`finetune-mlp` (Garg & Jain's evaluation minus test selection): what it trains, what it
reads, and when it reads test labels."""
import copy

import numpy as np
import torch
import torch.nn as nn
from accelerate import Accelerator

from byol_bench.config import DEFAULTS
from byol_bench.data import DatasetCard, LoadedDataset
from byol_bench.evaluation import PROTOCOLS, EvalContext
from byol_bench.evaluation.context import SealedLabels
from byol_bench.evaluation.finetune_mlp import finetune_mlp, mlp_classifier, parameter_change
from byol_bench.models.backbones import build_backbone


class RecordingLabels(SealedLabels):
    """SealedLabels that logs every read as (split, sealed at that moment)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reads = []

    def _check(self, key):
        self.reads.append((key, self.sealed))
        super()._check(key)


def tiny_context(epochs=3):
    rng = np.random.default_rng(0)
    n = {"train": 40, "val": 20, "test": 20}
    card = DatasetCard(name="tiny", loader="sklearn-digits", image_size=8, channels=1, mean=(0.5,),
                       std=(0.25,), classes=("a", "b"))
    labels = {k: rng.integers(0, 2, v).astype(np.int64) for k, v in n.items()}
    # class 1 is brighter: a learnable signal
    images = {k: np.clip(rng.integers(0, 128, (v, 1, 8, 8)) + 100 * labels[k][:, None, None, None], 0, 255)
              .astype(np.uint8) for k, v in n.items()}
    cfg = copy.deepcopy(DEFAULTS)
    cfg["eval"]["finetune_mlp"].update(epochs=epochs, batch_size=8, hidden=16, lr=0.05)
    torch.manual_seed(0)
    enc = build_backbone("small-cnn", in_channels=1, width=4)
    data = LoadedDataset(card, images, RecordingLabels(labels), ["a", "b"])
    return EvalContext(enc, data, cfg, 0, Accelerator(cpu=True))


def test_reads_test_labels_once_after_every_validation_epoch():
    ctx = tiny_context(epochs=3)
    result = PROTOCOLS.get("finetune-mlp")(ctx)
    reads = ctx.data.labels.reads
    test_reads = [r for r in reads if r[0] == "test"]
    assert test_reads == [("test", False)]                    # one read, by score_test, unsealed
    assert reads[-1] == ("test", False)                       # and after everything else
    assert sum(1 for split, _ in reads if split == "val") == 3  # one val score per epoch
    assert ctx.tested == {"finetune-mlp"} and ctx.data.labels.sealed
    assert 0.0 <= result["finetune-mlp/accuracy"] <= 1.0
    info = ctx.info["finetune-mlp"]
    assert 1 <= info["epoch"] <= 3 and info["encoder_relative_change"] > 0


def test_trains_the_encoder_end_to_end_on_a_copy():
    ctx = tiny_context(epochs=2)
    original = copy.deepcopy(ctx.encoder.state_dict())
    model, val, epoch = finetune_mlp(ctx.encoder, ctx.data, ctx.labels("train"), ctx.cfg, 0,
                                     torch.device("cpu"), lambda s: float((s.argmax(1) == ctx.labels("val")).mean()))
    tuned = model[0]
    changed = [name for name, p in tuned.named_parameters() if not torch.equal(p, original[name])]
    assert changed == [name for name, _ in tuned.named_parameters()]   # every encoder parameter moved
    assert parameter_change(ctx.encoder, tuned) > 0
    # the context's encoder (what other protocols see) is untouched
    assert all(torch.equal(v, original[k]) for k, v in ctx.encoder.state_dict().items())
    # the head: Linear(d, hidden) -> BN -> ReLU -> Linear(hidden, classes)
    assert [type(m) for m in model[1:]] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert model[1].out_features == 16 and model[4].out_features == 2


def test_head_shape_default_hidden_512():
    enc = build_backbone("small-cnn", in_channels=1, width=4)
    model = mlp_classifier(enc, DEFAULTS["eval"]["finetune_mlp"]["hidden"], 10)
    assert model[1].in_features == enc.feat_dim and model[1].out_features == 512 and model[4].out_features == 10
    assert model(torch.randn(4, 1, 8, 8)).shape == (4, 10)
