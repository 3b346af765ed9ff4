"""Evaluation protocols: registered, each scores the test split exactly once.

PROTOCOLS (harness.evaluation.context) imports every module of this package on its first lookup;
each protocol module registers itself.
"""
from harness.evaluation.context import PROTOCOLS, EvalContext

__all__ = ["PROTOCOLS", "EvalContext"]
