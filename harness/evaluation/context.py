"""What a protocol gets: the encoder, the data, features extracted once, and the single door
to test labels (`score_test`), so no protocol can select anything on test."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
from accelerate import Accelerator

from byol_bench.training.augment import Normalize
from byol_bench.data import LoadedDataset
from byol_bench.data.views import as_tensor
from byol_bench.evaluation.metrics import compute_metrics
from byol_bench.registry import Registry, discover_modules

# Built-in protocols (every module of byol_bench.evaluation), then the plugins' (entry points).
PROTOCOLS = Registry("protocol", discover=lambda: discover_modules("byol_bench.evaluation", "byol_bench.protocols"))


@torch.no_grad()
def extract_features(encoder: nn.Module, images: np.ndarray, normalize: Normalize,
                     batch_size: int, device: torch.device) -> torch.Tensor:
    """Frozen features (eval mode, no augmentation) as a float32 CPU tensor (N, D)."""
    was_training = encoder.training
    encoder.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = as_tensor(images[start:start + batch_size]).to(device, non_blocking=True)
        out.append(encoder(normalize(x)).float().cpu())
    encoder.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, encoder.feat_dim)


class SealedLabels(dict):
    """Labels per split whose 'test' entry cannot be read while sealed: every read path
    (indexing, get, items, values) raises, so no selection step can peek at test labels."""

    sealed = True

    def _check(self, key):
        if key == "test" and self.sealed:
            raise PermissionError("test labels are sealed until the protocol's one final score")

    def __getitem__(self, key):
        self._check(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self._check(key)
        return super().get(key, default)

    def items(self):
        self._check("test")
        return super().items()

    def values(self):
        self._check("test")
        return super().values()


@dataclass
class EvalContext:
    """Evaluation inputs for one run. Test labels are reachable only through `score_test`."""
    encoder: nn.Module
    data: LoadedDataset
    cfg: dict
    seed: int
    accelerator: Accelerator
    _features: dict[str, torch.Tensor] = field(default_factory=dict)
    tested: set[str] = field(default_factory=set)
    info: dict[str, dict] = field(default_factory=dict)  # what was chosen on val, per protocol
    load_dataset: Callable[[str], LoadedDataset] | None = None  # other datasets (transfer)
    prefix: str = ""                                           # result-key prefix (transfer)

    def __post_init__(self):
        if not isinstance(self.data.labels, SealedLabels):
            self.data = dataclasses.replace(self.data, labels=SealedLabels(self.data.labels))

    def on(self, data: LoadedDataset, prefix: str) -> "EvalContext":
        """The same encoder evaluated on another dataset; result keys get `prefix`."""
        return EvalContext(self.encoder, data, self.cfg, self.seed, self.accelerator,
                           tested=self.tested, info=self.info, load_dataset=self.load_dataset,
                           prefix=prefix)

    @property
    def task(self) -> str:
        return self.data.card.task

    @property
    def primary_metric(self) -> str:
        return self.data.card.primary_metric

    def features(self, split: str) -> torch.Tensor:
        """Features of train/val/test, extracted once per run and shared by protocols."""
        if split not in self._features:
            normalize = Normalize(self.data.card.mean, self.data.card.std).to(self.accelerator.device)
            self._features[split] = extract_features(
                self.encoder, self.data.images[split], normalize, self.cfg["eval"]["batch_size"],
                self.accelerator.device)
        return self._features[split]

    def labels(self, split: str) -> np.ndarray:
        """Labels of train or val (for fitting and selection). Test labels are refused."""
        if split == "test":
            raise PermissionError("test labels are only read by EvalContext.score_test")
        return self.data.labels[split]

    def val_metrics(self, scores: np.ndarray) -> dict[str, float]:
        return compute_metrics(self.task, self.labels("val"), scores)

    def score_test(self, protocol: str, scores: np.ndarray) -> dict[str, float]:
        """The one read of test labels, once per protocol: metrics of the final model, as
        result keys "<prefix><protocol>/<metric>"."""
        name = self.prefix + protocol
        if name in self.tested:
            raise RuntimeError(f"protocol {name!r} scored the test split twice")
        self.tested.add(name)
        labels = self.data.labels
        labels.sealed = False
        try:
            y_test = labels["test"]
        finally:
            labels.sealed = True
        metrics = compute_metrics(self.task, y_test, scores)
        return {f"{name}/{k}": float(v) for k, v in metrics.items()}
