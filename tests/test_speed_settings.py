"""pretrain.channels_last and pretrain.compile (byol_bench.training.speed): opt-in, out of the run
hash, applied to both networks without renaming a parameter. Neither is bit-identical to the
default path (NHWC kernels and compiled kernels round differently), so no DEFAULTS changed:
both stay False. One shipped config did change: configs/default.yaml (the default benchmark)
turns channels_last on, with eval.linear.cpu_threads 1 and run.monitor_every 5 (the last
changes no number: tests/test_watch.py)."""
import copy

import torch

from byol_bench.config import DEFAULTS, NON_IDENTITY_KEYS
from byol_bench.method import METHODS, StepContext
from byol_bench.models.backbones import build_backbone
from byol_bench.training.speed import apply_speed_settings


def small_byol():
    cfg = copy.deepcopy(DEFAULTS)
    cfg["byol"].update(proj_hidden=16, proj_dim=8, pred_hidden=16)
    torch.manual_seed(0)
    return METHODS.get("byol")(build_backbone("small-cnn", in_channels=1, width=4), cfg, {}, 10, "multiclass")


def test_speed_settings_are_off_by_default_and_not_part_of_a_runs_identity():
    assert DEFAULTS["pretrain"]["channels_last"] is False and DEFAULTS["pretrain"]["compile"] is False
    assert {"pretrain.channels_last", "pretrain.compile"} <= set(NON_IDENTITY_KEYS)
    m = small_byol()
    before = {k: v.clone() for k, v in m.online.state_dict().items()}
    assert apply_speed_settings(m, DEFAULTS["pretrain"]) is False
    after = m.online.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_channels_last_and_compile_reach_online_and_target_and_keep_parameter_names():
    m = small_byol()
    names = list(m.online.state_dict()), list(m.target.state_dict())
    pre = {**DEFAULTS["pretrain"], "channels_last": True, "compile": True}
    assert apply_speed_settings(m, pre) is True
    for net in (m.online, m.target):
        convs = [mod for mod in net.modules() if isinstance(mod, torch.nn.Conv2d)]
        assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
        assert net._compiled_call_impl is not None  # nn.Module.compile: compiled on first call
    assert (list(m.online.state_dict()), list(m.target.state_dict())) == names  # checkpoints, EMA pairing


def test_a_channels_last_step_computes_the_same_loss_up_to_rounding():
    plain, nhwc = small_byol(), small_byol()
    apply_speed_settings(nhwc, {**DEFAULTS["pretrain"], "channels_last": True})
    views = [torch.randn(6, 1, 8, 8), torch.randn(6, 1, 8, 8)]
    ctx = StepContext(epoch=0, step=0, total_steps=4, total_epochs=1)
    loss, _ = plain.training_step(plain.online, views, ctx)
    loss_nhwc, _ = nhwc.training_step(nhwc.online, [v.contiguous(memory_format=torch.channels_last)
                                                    for v in views], ctx)
    torch.testing.assert_close(loss_nhwc, loss, rtol=1e-5, atol=1e-6)


def test_the_default_benchmark_is_the_one_config_that_changed_its_speed_defaults():
    from byol_bench.config import load_config
    from byol_bench.shipped import shipped
    cfg = load_config(shipped("configs") / "default.yaml")
    assert cfg["pretrain"]["channels_last"] is True and cfg["pretrain"]["compile"] is False
    assert cfg["eval"]["linear"]["cpu_threads"] == 1 and DEFAULTS["eval"]["linear"]["cpu_threads"] == 0
    assert cfg["run"]["monitor_every"] == 5 and DEFAULTS["run"]["monitor_every"] == 1
