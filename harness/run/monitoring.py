"""What a run watches at the end of each pretraining epoch, on the main process.

Every `run.monitor_every` epochs (0: never; 1, the default: each epoch): the collapse signal
(byol_bench.training.monitor) on the first MONITOR_IMAGES val images, the same batch each time. Every `run.monitor_knn_every` epochs (0: never): the evaluation's own
weighted kNN (byol_bench.evaluation.knn) with the train split as the bank and val as queries,
scored with val labels. Test images and labels are never read here.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from accelerate import Accelerator

from byol_bench.data import LoadedDataset
from byol_bench.data.views import as_tensor
from byol_bench.evaluation.context import extract_features
from byol_bench.evaluation.knn import weighted_knn_scores
from byol_bench.evaluation.metrics import compute_metrics
from byol_bench.method import Method
from byol_bench.training.augment import Normalize
from byol_bench.training.monitor import MONITOR_IMAGES, collapse_figures


def epoch_monitor(method: Method, data: LoadedDataset, cfg: dict, accelerator: Accelerator,
                  knn_every: int = 0, every: int = 1) -> Callable[[int], dict[str, float]]:
    """epoch (0-based) -> the figures of that epoch's end; {} on the other processes."""
    if not accelerator.is_main_process or (every <= 0 and knn_every <= 0):
        return lambda epoch: {}
    device = accelerator.device
    normalize = Normalize(data.card.mean, data.card.std).to(device)
    fixed = normalize(as_tensor(data.images["val"][:MONITOR_IMAGES]).to(device))

    def at_end_of(epoch: int) -> dict[str, float]:
        figures = (collapse_figures(method.encoder, projection_head(method), fixed)
                   if every > 0 and (epoch + 1) % every == 0 else {})
        if knn_every > 0 and (epoch + 1) % knn_every == 0:
            figures[f"monitor/knn_val_{data.card.primary_metric}"] = knn_on_val(method.encoder, data, cfg, normalize,
                                                                               device)
        return figures
    return at_end_of


def projection_head(method: Method) -> torch.nn.Module:
    """What maps the encoder's representations to the output the collapse signal watches: for
    BYOL's family the projector, the rest of `online.net` = (encoder, projector) (methods/byol.py;
    read, not declared by a method hook, so that no method file changes); the identity for a
    method without a projector."""
    net = getattr(method.online, "net", None)
    if isinstance(net, torch.nn.Sequential) and len(net) > 1 and net[0] is method.encoder:
        return net[1:]
    return torch.nn.Identity()


def knn_on_val(encoder: torch.nn.Module, data: LoadedDataset, cfg: dict, normalize: Normalize,
               device: torch.device) -> float:
    """The kNN protocol's primary metric on val (train features as the bank)."""
    knn, batch = cfg["eval"]["knn"], cfg["eval"]["batch_size"]
    with torch.autocast(device.type, enabled=False):
        bank = extract_features(encoder, data.images["train"], normalize, batch, device).to(device)
        queries = extract_features(encoder, data.images["val"], normalize, batch, device).to(device)
    y = torch.as_tensor(data.labels["train"], device=device)
    targets = y.float() if data.card.task == "multilabel" else F.one_hot(y.long(), data.num_classes).float()
    scores = weighted_knn_scores(bank, targets, queries, knn["k"], knn["temperature"]).cpu().numpy()
    return float(compute_metrics(data.card.task, data.labels["val"], scores)[data.card.primary_metric])
