"""BYOL + CCSL (Garg & Jain 2022, METHODS.md section 4); the code it shares with BYOL + CSSL
(byol_cssl.py) is `CrossSimilarityBYOL` (base_cross_similarity.py).

The paper's: an in-batch loss on top of BYOL that finds semantically similar pairs and pulls
them together, with the thresholds theta+ = 0.8 and theta- = 0.2 of the authors' scripts.
Ours: every formula (the paper's are unpublished and its code was never released), as
`byol_bench.losses.cross_similarity.cross_similarity_loss` defines them: pseudo-labels from the target
cosines S_ij = cos(z'1_i, z'2_j) (i != j; y = 1 if S >= theta+, 0 if S <= theta-, else ignored),
online cross-similarities C_ij = cos(p1_i, z'2_j) and the other view pair, summed;
CCSL = mean_{y=1} (1 - C) + mean_{y=0} max(0, C - margin); CSSL = BCE(sigmoid(C / t + b), y);
an empty labelled set gives 0. Also ours: L = L_byol + lam * L_cross with lam = 1.0, margin 0,
t = 0.1, b = 0, and the columns being the global batch under DDP, each mean taken over the
global set of labelled pairs. Logged per epoch: the fractions of off-diagonal pairs labelled
positive and negative.
"""
from __future__ import annotations

from byol_bench.method import METHODS
from byol_bench.methods.base_cross_similarity import CrossSimilarityBYOL


@METHODS.register("byol-ccsl", description="BYOL + CCSL, cross-cosine loss on in-batch pairs labelled by "
                  "target cosine (Garg & Jain 2022; thresholds 0.8/0.2 theirs, formula ours)")
class BYOLCCSL(CrossSimilarityBYOL):
    """BYOL + CCSL (Garg & Jain 2022; formula ours, see the module doc)."""
    kind = "ccsl"
    loss_options = ("margin",)
    options = {**CrossSimilarityBYOL.options, "margin": 0.0}
