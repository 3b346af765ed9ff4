"""BYOL without BatchNorm in the encoder: the normalisation ablation of Garg & Jain 2022, Table 1
(METHODS.md section 2; Richemond et al. 2020 showed BYOL trains without batch statistics).

The paper's: the six encoder variants and their names, `none`, `none+ws`, `ln`, `ln+ws`, `gn`,
`gn+ws` (vanilla BYOL's `bn` is the seventh row, registered as `byol`); WS = per-output-channel
weight standardisation of every conv (eps 1e-5); LN for conv features = GroupNorm(1, C). The
authors' released code changed only the backbone's normalisation and kept BN in the projector
and predictor, which is our default too (option `heads_norm`, "bn").

`--methods all` runs `byol-nobn` only; select the six ablation rows by name, by the wildcard
`byol-nobn-*`, or with configs/bn-ablation.yaml.

Ours: the GN group count (backbone.gn_groups, 32, or the largest divisor of C not above it, so
it always divides the channels), `byol-nobn` as a short name for the best row (`gn+ws`), and
`heads_norm` as an option: with "bn" the heads still see batch statistics, with "gn"/"ln"/"none"
the whole network is free of them. `none+ws` uses scaled WS, the standardised weight times
backbone.ws_gain (1.0) / sqrt(fan_in) as in Brock et al. 2021's NF-ResNets, where the paper's
plain WS with no norm layer after it overflows with depth (ResNet-50: NaN at initialisation);
the paper does not say what it did. Everything else is the BYOL base unchanged.
"""
from __future__ import annotations

from byol_bench.errors import UserError
from byol_bench.method import METHODS
from byol_bench.models.norms import NORM_KINDS
from byol_bench.methods.byol import BYOL


class BYOLNoBN(BYOL):
    """BYOL whose encoder normalisation is `encoder_norm` instead of BatchNorm."""
    encoder_norm: str = "gn+ws"
    options = {"heads_norm": "bn"}  # the authors' code kept BN in the MLP heads

    @classmethod
    def configure(cls, run_config: dict) -> None:
        heads_norm = run_config["method_options"]["heads_norm"]
        if heads_norm not in NORM_KINDS:
            raise UserError(f"method_options.{run_config['method']}.heads_norm must be one of "
                            f"{', '.join(NORM_KINDS)}, got {heads_norm!r}")
        run_config["backbone"]["norm"] = cls.encoder_norm
        run_config["byol"]["heads_norm"] = heads_norm


VARIANTS = {  # registered name -> encoder norm spec (harness/models/norms.py)
    "byol-nobn-none": "none",
    "byol-nobn-none-ws": "none+ws",
    "byol-nobn-ln": "ln",
    "byol-nobn-ln-ws": "ln+ws",
    "byol-nobn-gn": "gn",
    "byol-nobn-gn-ws": "gn+ws",
    "byol-nobn": "gn+ws",
}
_WORDS = {"none": "no normalisation", "ln": "LayerNorm (GroupNorm(1, C))", "gn": "GroupNorm"}


def _register(name: str, norm: str) -> None:
    kind, _, ws = norm.partition("+")
    what = _WORDS[kind] + (" + weight standardisation" if ws else "")
    doc = (f"BYOL, encoder with {what} instead of BN (Garg & Jain Table 1"
           f"{', best row' if name == 'byol-nobn' else ''}); heads: option heads_norm (bn)")
    cls = type(name.replace("-", "_").upper(), (BYOLNoBN,),
               {"encoder_norm": norm, "__doc__": doc, "__module__": __name__})
    METHODS.add(name, cls, description=doc, in_all=name == "byol-nobn")  # the six rows: by name


for _name, _norm in VARIANTS.items():
    _register(_name, _norm)
