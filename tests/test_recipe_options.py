"""Garg & Jain's recipe as options (METHODS.md section 6), each against a hand-computed or
brute-force reference: constant EMA, target BN buffers, step LR, weight decay on everything,
dropout placement, the 3x3 stride-1 stem with max-pool, unlabeled-only pretraining."""
import copy

import numpy as np
import pytest
import torch
import torch.nn as nn

from byol_bench.losses.ema import ema_tau, update_ema
from byol_bench.config import DEFAULTS, config_hash, load_config
from byol_bench.data.card import DatasetCard
from byol_bench.data.dataset import LoadedDataset
from byol_bench.errors import UserError
from byol_bench.method import METHODS, StepContext
from byol_bench.models.backbones import build_backbone
from byol_bench.training.optim import build_optimizer, lr_schedule, param_groups, step_lr
from byol_bench.training.loader import make_loader, monitoring_labels


# --- EMA ----------------------------------------------------------------------------------

def test_constant_ema_schedule_leaves_tau_fixed_at_every_step():
    taus = [ema_tau("constant", k, 50, 0.996) for k in range(0, 60)]
    assert taus == [0.996] * 60
    # the cosine default still rises to 1
    assert ema_tau("cosine", 0, 50, 0.996) == 0.996 and ema_tau("cosine", 50, 50, 0.996) == 1.0


def small_byol(**byol):
    methods = METHODS
    cfg = copy.deepcopy(DEFAULTS)
    cfg["byol"].update(proj_hidden=8, proj_dim=4, pred_hidden=8, tau_base=0.9, **byol)
    torch.manual_seed(0)
    return methods.get("byol")(build_backbone("small-cnn", in_channels=1, width=4), cfg, {}, 10, "multiclass")


def test_byol_with_constant_tau_updates_the_target_by_tau_base_at_every_step():
    m = small_byol(tau_schedule="constant")
    opt = torch.optim.SGD(m.online.parameters(), lr=0.5)
    views = [torch.randn(6, 1, 8, 8), torch.randn(6, 1, 8, 8)]
    for k in (0, 3, 9):  # late steps too: the cosine schedule would be near 1 there
        before_t = [p.clone() for p in m.target.parameters()]
        ctx = StepContext(epoch=0, step=k, total_steps=10, total_epochs=1)
        loss, _ = m.training_step(m.online, views, ctx)
        opt.zero_grad()
        loss.backward()
        opt.step()
        m.after_optimizer_step(ctx)
        for xi0, xi, theta in zip(before_t, m.target.parameters(), m.online.net.parameters()):
            torch.testing.assert_close(xi, 0.9 * xi0 + 0.1 * theta)


def test_target_bn_buffers_are_copied_by_default_and_kept_when_asked():
    online = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    online(torch.randn(8, 2))  # moves running stats away from 0 / 1
    for copy_buffers, expect_mean in ((True, online[1].running_mean), (False, torch.zeros(3))):
        target = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
        update_ema(target, online, 0.5, copy_buffers=copy_buffers)
        torch.testing.assert_close(target[1].running_mean, expect_mean)
    m = small_byol(copy_target_bn_buffers=False)
    assert m.copy_target_bn_buffers is False and small_byol().copy_target_bn_buffers is True


# --- learning rate and weight decay ----------------------------------------------------------

def test_step_lr_at_chosen_steps_by_hand():
    # 7 steps per epoch, decay x0.5 every 3 epochs: epochs 0-2 -> 0.2, 3-5 -> 0.1, 6-8 -> 0.05
    assert step_lr(0, 7, 3, 0.5, 0.2) == 0.2
    assert step_lr(20, 7, 3, 0.5, 0.2) == 0.2          # epoch 2, last step before the decay
    assert step_lr(21, 7, 3, 0.5, 0.2) == 0.1          # epoch 3
    assert step_lr(41, 7, 3, 0.5, 0.2) == 0.1          # epoch 5
    assert step_lr(42, 7, 3, 0.5, 0.2) == pytest.approx(0.05)
    # Garg & Jain's vanilla script: StepLR(step_size=10, gamma=0.99), lr 0.008
    assert step_lr(10 * 9 + 5, 9, 10, 0.99, 0.008) == pytest.approx(0.008 * 0.99)
    assert step_lr(99 * 9, 9, 10, 0.99, 0.008) == pytest.approx(0.008 * 0.99 ** 9)


def test_step_schedule_equals_torch_steplr_stepped_per_epoch():
    pre = {**DEFAULTS["pretrain"], "lr_schedule": "step", "lr": 0.03, "lr_step_epochs": 2,
           "lr_gamma": 10.0, "warmup_epochs": 0, "epochs": 7}   # their CCSL script's gamma 10 (sic)
    lr_at = lr_schedule(pre, steps_per_epoch=3)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.03)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=10.0)
    for epoch in range(7):
        for s in range(3):
            assert lr_at(epoch * 3 + s) == pytest.approx(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()


def test_default_schedule_is_still_warmup_cosine():
    pre = {**DEFAULTS["pretrain"], "epochs": 4, "warmup_epochs": 1, "lr": 1.0}
    lr_at = lr_schedule(pre, steps_per_epoch=2)
    assert [round(lr_at(k), 6) for k in range(8)] == [0.5, 1.0, 1.0, 0.933013, 0.75, 0.5, 0.25, 0.066987]


def test_weight_decay_all_puts_biases_and_norm_parameters_in_the_decayed_group():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    n_params = len(list(model.parameters()))
    default = param_groups(model, 4e-4)
    assert [len(g["params"]) for g in default] == [2, n_params - 2]       # two weight matrices
    every = param_groups(model, 4e-4, decay_all=True)
    assert [len(g["params"]) for g in every] == [n_params, 0] and every[0]["weight_decay"] == 4e-4
    opt = build_optimizer(model, {**DEFAULTS["pretrain"], "optimizer": "sgd", "weight_decay": 4e-4,
                                  "weight_decay_all": True})
    assert all(g["weight_decay"] == 4e-4 for g in opt.param_groups if g["params"])


# --- backbone: dropout and stem -----------------------------------------------------------

def dropout_names(enc):
    return [name for name, m in enc.trunk.named_modules() if isinstance(m, nn.Dropout)]


def test_dropout_after_every_residual_block_as_their_byol_py():
    enc = build_backbone("resnet18", in_channels=3, stem="small-maxpool", dropout=0.15)
    # byol.py's ByolBackBone: one Dropout after each of the 2 blocks of layer1..layer4, none in the stem
    assert dropout_names(enc) == ["layer1.1", "layer1.3", "layer2.1", "layer2.3",
                                  "layer3.1", "layer3.3", "layer4.1", "layer4.3"]
    assert all(m.p == 0.15 for m in enc.modules() if isinstance(m, nn.Dropout))
    for layer in ("layer1", "layer2", "layer3", "layer4"):
        kinds = [type(m).__name__ for m in getattr(enc.trunk, layer)]
        assert kinds == ["BasicBlock", "Dropout", "BasicBlock", "Dropout"]
    # no Dropout at all by default: the module tree (and old checkpoints' keys) unchanged
    plain = build_backbone("resnet18", in_channels=3, dropout=0.0, dropout_stem=True)
    assert not any(isinstance(m, nn.Dropout) for m in plain.modules())
    assert "layer1.1.conv1.weight" in plain.trunk.state_dict()


def test_dropout_stem_adds_it_after_the_stem_activation_and_pool():
    enc = build_backbone("resnet18", in_channels=3, stem="small-maxpool", dropout=0.15, dropout_stem=True)
    assert dropout_names(enc)[:2] == ["relu.1", "maxpool.1"] and len(dropout_names(enc)) == 10
    assert [type(m) for m in enc.trunk.relu] == [nn.ReLU, nn.Dropout]
    assert [type(m) for m in enc.trunk.maxpool] == [nn.MaxPool2d, nn.Dropout]
    no_pool = build_backbone("resnet18", in_channels=3, stem="small", dropout=0.15, dropout_stem=True)
    assert dropout_names(no_pool)[:2] == ["relu.1", "layer1.1"]      # no pool, no Dropout after it


def test_dropout_is_active_in_train_mode_only():
    torch.manual_seed(0)
    enc = build_backbone("resnet18", in_channels=3, stem="small-maxpool", dropout=0.5, dropout_stem=True)
    x = torch.randn(2, 3, 16, 16)
    enc.eval()
    assert torch.equal(enc(x), enc(x))
    enc.train()
    assert not torch.equal(enc(x), enc(x))


@pytest.mark.parametrize("stem, small_stem, side", [
    ("small-maxpool", False, 48),  # 3x3 stride 1, then the 3x3 stride-2 max-pool: 96 -> 48
    ("small", False, 96),          # 3x3 stride 1, no pool
    ("imagenet", True, 24),        # 7x7 stride 2 + pool: 96 -> 24 (stem wins over small_stem)
    ("", True, 96),                # the old flag alone still works
    ("", False, 24),
])
def test_stem_output_shape(stem, small_stem, side):
    enc = build_backbone("resnet18", in_channels=3, stem=stem, small_stem=small_stem)
    net = enc.trunk
    x = torch.randn(2, 3, 96, 96)
    out = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    assert out.shape == (2, 64, side, side)
    assert enc(x).shape == (2, 512)
    if stem == "small-maxpool":
        assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
        assert isinstance(net.maxpool, nn.MaxPool2d)


def test_stem_and_dropout_refused_for_small_cnn_and_bad_values():
    with pytest.raises(UserError, match="ResNets only"):
        build_backbone("small-cnn", in_channels=1, dropout=0.1)
    with pytest.raises(UserError, match="backbone.stem"):
        load_config(None, ["backbone.stem=tiny"])
    with pytest.raises(UserError, match="tau_schedule"):
        load_config(None, ["byol.tau_schedule=linear"])
    with pytest.raises(UserError, match="lr_schedule"):
        load_config(None, ["pretrain.lr_schedule=cosine"])
    with pytest.raises(UserError, match="pretrain_splits"):
        load_config(None, ["data.pretrain_splits=test"])


# --- pretraining splits ------------------------------------------------------------------

def tiny_dataset():
    card = DatasetCard(name="tiny", loader="stl10-binary", channels=1, mean=(0.5,), std=(0.5,),
                       image_size=4, classes=("a", "b"))
    # train images are all 1s, unlabeled all 200s, val/test distinct values: a drawn image says
    # which split it came from
    images = {"train": np.full((6, 1, 4, 4), 1, np.uint8), "val": np.full((2, 1, 4, 4), 2, np.uint8),
              "test": np.full((2, 1, 4, 4), 3, np.uint8), "unlabeled": np.full((10, 1, 4, 4), 200, np.uint8)}
    labels = {"train": np.array([0, 1] * 3), "val": np.array([0, 1]), "test": np.array([0, 1])}
    return LoadedDataset(card=card, images=images, labels=labels, classes=["a", "b"])


def test_unlabeled_only_pretraining_draws_no_train_image():
    from accelerate import Accelerator
    data = tiny_dataset()
    cfg = copy.deepcopy(DEFAULTS)
    cfg["data"]["pretrain_splits"] = "unlabeled"
    cfg["pretrain"]["batch_size"] = 4
    method = METHODS.get("byol")
    loader = make_loader(method, data, cfg, Accelerator(cpu=True), seed=0)
    drawn = torch.cat([batch[0] for epoch in range(3) for batch in loader])
    assert len(drawn) == 3 * 8                                    # 10 unlabeled, drop_last at 4
    assert torch.all(drawn == 200)                                # never a train (1), val or test image
    assert torch.all(loader.dataset.labels == -1)                 # monitoring labels: none
    both = data.pretrain_images("train+unlabeled")
    assert len(both) == 16 and set(np.unique(both)) == {1, 200}
    assert set(np.unique(data.pretrain_images("train"))) == {1}
    assert monitoring_labels(data, "train").tolist() == [0, 1] * 3


def test_unlabeled_only_needs_an_unlabeled_split():
    data = tiny_dataset()
    del data.images["unlabeled"]
    with pytest.raises(UserError, match="no unlabeled split"):
        data.pretrain_images("unlabeled")
    assert len(data.pretrain_images()) == 6    # the default falls back to train alone, as before


def test_train_subset_is_stratified_fixed_and_leaves_val_and_test():
    data = tiny_dataset()
    data.images["train"] = np.arange(40, dtype=np.uint8).repeat(16).reshape(40, 1, 4, 4)
    data.labels["train"] = np.array([0, 1] * 20)
    sub = data.train_subset(10)
    assert len(sub.images["train"]) == 10 and np.bincount(sub.labels["train"]).tolist() == [5, 5]
    assert np.array_equal(sub.images["train"], data.train_subset(10).images["train"])  # seed from the card
    assert sub.images["val"] is data.images["val"] and sub.images["test"] is data.images["test"]
    assert data.train_subset(0) is data


def test_new_keys_at_their_defaults_keep_old_run_hashes():
    rc = {"dataset": "digits", "method": "byol", "seed": 0, **copy.deepcopy(DEFAULTS)}
    old = copy.deepcopy(rc)
    for section, key in (("backbone", "stem"), ("backbone", "dropout"), ("backbone", "dropout_stem"), ("pretrain", "lr_schedule"),
                         ("pretrain", "lr_step_epochs"), ("pretrain", "lr_gamma"),
                         ("pretrain", "weight_decay_all"), ("byol", "tau_schedule"),
                         ("byol", "copy_target_bn_buffers"), ("data", "pretrain_splits"),
                         ("data", "train_subsample")):
        del old[section][key]
    del old["eval"]["finetune_mlp"]
    assert config_hash(rc) == config_hash(old)
    rc["byol"]["tau_schedule"] = "constant"
    assert config_hash(rc) != config_hash(old)
