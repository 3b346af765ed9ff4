"""BYOL + CSSL (Garg & Jain 2022; METHODS.md section 4): the cross-sigmoid loss, a binary
cross-entropy on sigmoid(C_ij / t + b) against the target pseudo-labels. Thresholds 0.8 / 0.2
are the authors'; the formula, t = 0.1, b = 0 and lam = 1.0 are ours (see methods/byol_ccsl.py)."""
from __future__ import annotations

from byol_bench.method import METHODS
from byol_bench.methods.base_cross_similarity import CrossSimilarityBYOL


@METHODS.register("byol-cssl", description="BYOL + CSSL, cross-sigmoid BCE on in-batch pairs labelled by "
                  "target cosine (Garg & Jain 2022; thresholds 0.8/0.2 theirs, formula ours)")
class BYOLCSSL(CrossSimilarityBYOL):
    """BYOL + CSSL (Garg & Jain 2022; formula ours, see methods/byol_ccsl.py)."""
    kind = "cssl"
    loss_options = ("temperature", "bias")
    options = {**CrossSimilarityBYOL.options, "temperature": 0.1, "bias": 0.0}
