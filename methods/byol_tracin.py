"""BYOL + an additional positive per image chosen by TracIn (Zeng et al. 2023; METHODS.md section 3);
the selection and loss it shares with the `byol-nn` control are `ExtraPositiveBYOL`'s
(base_extra_positive.py).

The paper's: score every pair of the batch by TracIn, the dot product of their per-sample loss
gradients (l_i = image i's symmetric BYOL loss); pick j*(i) = argmax_{j != i} T_ij; add BYOL's loss
towards the partner's target projections, mean_i [l(p1_i, z'2_j*) + l(p2_i, z'1_j*)].

Ours (the paper does not give them; each is an option or stated here):
- the layer: the predictor's last Linear, where the batch-wise score is exact (nothing mixes
  samples after it): T_ij = sum_{u,v} (a_ui . a_vj + 1)(g_ui . g_vj), a = its input activations
  (`ViewOutputs.pred_hidden`), g = the closed-form dl/dp (`byol_loss_grad_wrt_p`), no extra
  backward pass and no per-sample gradient tensor (`byol_bench.losses.extra_positive.pairwise_tracin`);
- `lam` (1.0): weight of the extra term, L = L_byol + lam * L_extra;
- `warmup_frac` (0.1): the extra term is off for the first 10% of the training steps;
- `normalize` (False): cosine of the gradients instead of raw TracIn (raw is the paper's name);
- scores in float32 under no_grad with autocast off; under DDP the columns are the global batch
  (one all_gather); tied scores go to a uniformly random partner (a column order drawn from
  the run seed and step, the same on every process), not to the lowest index.
Monitoring only, never trained on: per epoch, how often the partner shares the true label
(`partner_same_label`; images without a label, e.g. STL10's unlabeled split, are left out).
"""
from __future__ import annotations

from torch import Tensor

from byol_bench.losses.byol import byol_loss_grad_wrt_p
from byol_bench.losses.extra_positive import pairwise_tracin
from byol_bench.method import METHODS
from byol_bench.methods.base_extra_positive import ExtraPositiveBYOL
from byol_bench.methods.byol import ViewOutputs


@METHODS.register("byol-tracin", description="BYOL + an extra positive per image chosen by TracIn "
                  "of the predictor's last Linear (Zeng et al. 2023); lam, warmup_frac, normalize: ours")
class BYOLTracIn(ExtraPositiveBYOL):
    """BYOL + an extra positive per image chosen by TracIn (Zeng et al. 2023); see the module doc."""
    options = {**ExtraPositiveBYOL.options, "normalize": False}

    def score_features(self, out: ViewOutputs) -> list[Tensor]:
        """[a1, a2, g1, g2]: the predictor's last-Linear inputs and its output gradients
        g1 = dl/dp1 = grad l(p1, z'2), g2 = grad l(p2, z'1), float32."""
        (p1, p2), (z1, z2) = ([t.detach().float() for t in pair] for pair in (out.p, out.z_target))
        acts = [a.detach().float() for a in out.pred_hidden]
        return acts + [byol_loss_grad_wrt_p(p1, z2), byol_loss_grad_wrt_p(p2, z1)]

    def score(self, rows, cols):
        return pairwise_tracin(rows[2:4], rows[4:6], self.opt["normalize"],
                               acts_cols=cols[2:4], grads_cols=cols[4:6])
