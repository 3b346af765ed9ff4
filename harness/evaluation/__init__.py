"""Evaluation protocols: registered, each scores the test split exactly once.

PROTOCOLS (byol_bench.evaluation.context) imports every module of this package on its first lookup;
each protocol module registers itself.
"""
from byol_bench.evaluation.context import PROTOCOLS, EvalContext

__all__ = ["PROTOCOLS", "EvalContext"]
