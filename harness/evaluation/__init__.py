"""Evaluation protocols: registered, each scores the test split exactly once.

Importing this package registers the built-in protocols.
"""
from harness.evaluation.context import PROTOCOLS, EvalContext
from harness.evaluation import finetune_mlp, knn, linear, semi, transfer  # noqa: F401  (registration)

__all__ = ["PROTOCOLS", "EvalContext"]
