"""Evaluation protocols: registered, each scores the test split exactly once.

PROTOCOLS (byol_bench.evaluation.context) imports every module of this package on its first lookup;
each protocol module registers itself.

Both names are looked up on first use (PEP 562), so that importing byol_bench.evaluation.metrics
alone (the leaderboard does) does not import torch with the protocols' context.
"""
__all__ = ["PROTOCOLS", "EvalContext"]


def __getattr__(name: str):
    if name in __all__:
        from byol_bench.evaluation import context
        return getattr(context, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
