"""The one construction path from a run config to a method: encoder, then the method around it.

The runner builds every run with `build_method`; the timing tools (benchmarks/) build theirs
from `byol_bench.plan.run_config.method_config` and this function, so what they time is what runs.
"""
from __future__ import annotations

from byol_bench.method import METHODS, Method
from byol_bench.models.backbones import build_encoder


def build_method(run_config: dict, in_channels: int, num_classes: int, task: str) -> Method:
    """The method `run_config["method"]` with the encoder its `backbone` section names."""
    encoder = build_encoder(run_config["backbone"], in_channels, run_config.get("data", {}).get("image_size"))
    cls = METHODS.get(run_config["method"])
    return cls(encoder, run_config, run_config["method_options"], num_classes, task)
