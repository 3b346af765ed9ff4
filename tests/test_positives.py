"""Batch-wise TracIn against brute-force per-sample gradients (torch.func), selection, extra loss."""
import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from byol_bench.losses.byol import byol_loss_grad_wrt_p, byol_pair_loss, symmetric_byol_loss
from byol_bench.losses.extra_positive import (extra_positive_loss, nearest_neighbour_scores, pairwise_tracin,
                                           select_partners)

BATCH_SIZES = [2, 3, 8, 17, 64]
D_IN, D_OUT = 12, 7


def _tolerances(dtype):
    return (1e-10, 1e-12) if dtype == torch.float64 else (1e-4, 1e-6)


def assert_gram_close(actual, expected, dtype):
    """rtol on every entry, with an atol relative to the matrix scale (entries near 0 cancel)."""
    rtol, atol = _tolerances(dtype)
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol * expected.abs().max().item())


def _linear_problem(batch, dtype, seed):
    """A shared Linear applied to two views, fixed targets: the BYOL predictor's last layer."""
    g = torch.Generator().manual_seed(seed)
    layer = nn.Linear(D_IN, D_OUT).to(dtype)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(D_OUT, D_IN, generator=g, dtype=dtype))
        layer.bias.copy_(torch.randn(D_OUT, generator=g, dtype=dtype))
    x1, x2 = (torch.randn(batch, D_IN, generator=g, dtype=dtype) for _ in range(2))
    z1, z2 = (torch.randn(batch, D_OUT, generator=g, dtype=dtype) for _ in range(2))
    return layer, x1, x2, z1, z2


def _brute_force_gram(module, x1, x2, z1, z2, names=None):
    """<grad l_i, grad l_j> from per-sample gradients: functional_call + vmap(grad)."""
    params = {k: v.detach() for k, v in module.named_parameters()}

    def loss_of_sample(params, x1_i, x2_i, z1_i, z2_i):
        p1 = functional_call(module, params, (x1_i.unsqueeze(0),))
        p2 = functional_call(module, params, (x2_i.unsqueeze(0),))
        return (byol_pair_loss(p1, z2_i.unsqueeze(0)) + byol_pair_loss(p2, z1_i.unsqueeze(0))).sum()

    per_sample = vmap(grad(loss_of_sample), in_dims=(None, 0, 0, 0, 0))(params, x1, x2, z1, z2)
    names = names or list(params)
    flat = torch.cat([per_sample[k].reshape(x1.shape[0], -1) for k in names], dim=1)
    return flat @ flat.T, flat


def _grads_closed_form(layer, x1, x2, z1, z2):
    with torch.no_grad():
        p1, p2 = layer(x1), layer(x2)
    return [byol_loss_grad_wrt_p(p1, z2), byol_loss_grad_wrt_p(p2, z1)]


def _grads_autograd(layer, x1, x2, z1, z2):
    """dl_i/dp_vi from ONE backward of the summed loss: nothing mixes samples after the layer."""
    p1, p2 = layer(x1), layer(x2)
    p1.retain_grad()
    p2.retain_grad()
    _, per_sample = symmetric_byol_loss(p1, p2, z1, z2)
    per_sample.sum().backward()
    layer.zero_grad()
    return [p1.grad, p2.grad]


# ---- exactness of pairwise_tracin against vmap(grad) ----------------------------------------

@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("batch", BATCH_SIZES)
@pytest.mark.parametrize("grad_source", ["closed_form", "autograd"])
def test_tracin_equals_per_sample_gradient_dot_products(batch, dtype, grad_source):
    layer, x1, x2, z1, z2 = _linear_problem(batch, dtype, seed=batch)
    expected, _ = _brute_force_gram(layer, x1, x2, z1, z2)
    make = _grads_closed_form if grad_source == "closed_form" else _grads_autograd
    scores = pairwise_tracin([x1, x2], make(layer, x1, x2, z1, z2))
    assert scores.shape == (batch, batch) and scores.dtype == dtype
    assert_gram_close(scores, expected, dtype)


def test_tracin_accepts_tuples_and_has_no_autograd_history():
    layer, x1, x2, z1, z2 = _linear_problem(5, torch.float64, seed=3)
    grads = _grads_autograd(layer, x1, x2, z1, z2)
    x1.requires_grad_()
    scores = pairwise_tracin((x1, x2), tuple(grads))
    assert not scores.requires_grad
    assert_gram_close(scores, _brute_force_gram(layer, x1.detach(), x2, z1, z2)[0], torch.float64)


def test_tracin_single_view_golden_and_vmap():
    # One sample pair by hand: a = [1, 2], [0, 1]; g = [1, 0], [3, 4].
    a = torch.tensor([[1.0, 2.0], [0.0, 1.0]], dtype=torch.float64)
    g = torch.tensor([[1.0, 0.0], [3.0, 4.0]], dtype=torch.float64)
    # T_00 = (5 + 1) * 1 = 6; T_01 = (2 + 1) * 3 = 9; T_11 = (1 + 1) * 25 = 50.
    expected = torch.tensor([[6.0, 9.0], [9.0, 50.0]], dtype=torch.float64)
    torch.testing.assert_close(pairwise_tracin(a, g), expected)
    # Without the bias term: (a.a)(g.g).
    torch.testing.assert_close(pairwise_tracin(a, g, bias=False),
                               torch.tensor([[5.0, 6.0], [6.0, 25.0]], dtype=torch.float64))

    # Single view against vmap(grad) of l_i = l(p_i, z_i).
    layer, x, _, z, _ = _linear_problem(9, torch.float64, seed=11)
    params = {k: v.detach() for k, v in layer.named_parameters()}
    per_sample = vmap(grad(lambda prm, x_i, z_i: byol_pair_loss(
        functional_call(layer, prm, (x_i[None],)), z_i[None]).sum()), in_dims=(None, 0, 0))(params, x, z)
    flat = torch.cat([per_sample["weight"].flatten(1), per_sample["bias"]], dim=1)
    with torch.no_grad():
        g_out = byol_loss_grad_wrt_p(layer(x), z)
    assert_gram_close(pairwise_tracin(x, g_out), flat @ flat.T, torch.float64)


def test_tracin_two_views_golden_by_hand():
    # B = 1, two views: T = sum_{u,v} (a_u . a_v + 1)(g_u . g_v)
    a1, a2 = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    g1, g2 = torch.tensor([[1.0]]), torch.tensor([[-1.0]])
    # (1+1)(1) + (0+1)(-1) + (0+1)(-1) + (4+1)(1) = 2 - 1 - 1 + 5 = 5
    assert pairwise_tracin([a1, a2], [g1, g2]).item() == pytest.approx(5.0)
    # Direct: grad_W = g1 a1^T + g2 a2^T = [[1, -2]], grad_b = 0 -> |.|^2 = 5
    assert pairwise_tracin([a1, a2], [g1, g2], normalize=True).item() == pytest.approx(1.0)


# ---- MLP predictor: TracIn of its LAST Linear only -------------------------------------------

def _predictor(dtype, seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(D_IN, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, D_OUT)).to(dtype)


def _last_layer_inputs_and_grads(predictor, x1, x2, z1, z2):
    """What a method does: a forward hook on the last Linear, retain_grad on the predictions."""
    captured = []
    handle = predictor[3].register_forward_hook(lambda mod, inp, out: captured.append(inp[0].detach()))
    p1, p2 = predictor(x1), predictor(x2)
    handle.remove()
    p1.retain_grad()
    p2.retain_grad()
    symmetric_byol_loss(p1, p2, z1, z2)[1].sum().backward()
    predictor.zero_grad()
    closed = [byol_loss_grad_wrt_p(p1.detach(), z2), byol_loss_grad_wrt_p(p2.detach(), z1)]
    return captured, [p1.grad, p2.grad], closed


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("batch", [3, 8, 17])
def test_tracin_mlp_last_layer_eval_mode(batch, dtype):
    predictor = _predictor(dtype, seed=batch)
    predictor.train()
    predictor(torch.randn(32, D_IN, dtype=dtype))   # non-trivial running statistics
    predictor.eval()
    _, x1, x2, z1, z2 = _linear_problem(batch, dtype, seed=100 + batch)
    acts, grads_autograd, grads_closed = _last_layer_inputs_and_grads(predictor, x1, x2, z1, z2)
    # Eval-mode BN is per-sample, so vmap(grad) can run the whole predictor per sample;
    # keep only the last Linear's parameters.
    expected, _ = _brute_force_gram(predictor, x1, x2, z1, z2, names=["3.weight", "3.bias"])
    assert_gram_close(pairwise_tracin(acts, grads_autograd), expected, dtype)
    assert_gram_close(pairwise_tracin(acts, grads_closed), expected, dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("batch", [3, 8, 17])
def test_tracin_mlp_last_layer_train_mode(batch, dtype):
    predictor = _predictor(dtype, seed=batch)
    predictor.train()
    _, x1, x2, z1, z2 = _linear_problem(batch, dtype, seed=200 + batch)
    acts, grads_autograd, grads_closed = _last_layer_inputs_and_grads(predictor, x1, x2, z1, z2)
    # Train-mode BN couples samples, but only upstream of the last Linear: its hidden inputs
    # are fixed per batch, so brute-force over the last layer alone with those inputs.
    with torch.no_grad():
        h1, h2 = predictor[:3](x1), predictor[:3](x2)
    torch.testing.assert_close(acts[0], h1)
    expected, _ = _brute_force_gram(predictor[3], h1, h2, z1, z2)
    assert_gram_close(pairwise_tracin(acts, grads_autograd), expected, dtype)
    assert_gram_close(pairwise_tracin(acts, grads_closed), expected, dtype)


def test_tracin_mlp_train_mode_against_per_sample_backward_loop():
    """The exact per-sample gradient of the last layer, BN coupling and all: one backward per i."""
    batch, dtype = 6, torch.float64
    predictor = _predictor(dtype, seed=5)
    predictor.train()
    _, x1, x2, z1, z2 = _linear_problem(batch, dtype, seed=7)
    acts, grads_autograd, _ = _last_layer_inputs_and_grads(predictor, x1, x2, z1, z2)
    _, per_sample = symmetric_byol_loss(predictor(x1), predictor(x2), z1, z2)
    last = [predictor[3].weight, predictor[3].bias]
    rows = [torch.cat([g.flatten() for g in torch.autograd.grad(per_sample[i], last, retain_graph=True)])
            for i in range(batch)]
    flat = torch.stack(rows)
    assert_gram_close(pairwise_tracin(acts, grads_autograd), flat @ flat.T, dtype)


# ---- normalised TracIn ------------------------------------------------------------------------

@pytest.mark.parametrize("batch", [2, 8, 17])
def test_normalized_tracin_is_gradient_cosine(batch):
    layer, x1, x2, z1, z2 = _linear_problem(batch, torch.float64, seed=30 + batch)
    _, flat = _brute_force_gram(layer, x1, x2, z1, z2)
    unit = flat / flat.norm(dim=1, keepdim=True)
    cosine = pairwise_tracin([x1, x2], _grads_closed_form(layer, x1, x2, z1, z2), normalize=True)
    torch.testing.assert_close(cosine, unit @ unit.T, rtol=1e-10, atol=1e-12)
    assert cosine.min() >= -1.0 and cosine.max() <= 1.0
    torch.testing.assert_close(cosine.diagonal(), torch.ones(batch, dtype=torch.float64))


def test_normalized_tracin_float32_bounds_and_zero_gradient():
    layer, x1, x2, z1, z2 = _linear_problem(64, torch.float32, seed=4)
    grads = _grads_closed_form(layer, x1, x2, z1, z2)
    grads[0][0] = 0.0
    grads[1][0] = 0.0          # sample 0 has a zero gradient
    cosine = pairwise_tracin([x1, x2], grads, normalize=True)
    assert torch.isfinite(cosine).all()
    assert cosine.min() >= -1.0 and cosine.max() <= 1.0
    assert (cosine[0] == 0).all() and (cosine[:, 0] == 0).all()
    torch.testing.assert_close(cosine.diagonal()[1:], torch.ones(63), rtol=0, atol=1e-5)


def test_normalized_tracin_changes_the_winner_of_a_large_gradient():
    # Sample 2's gradient is huge and roughly aligned: raw TracIn picks it, cosine does not.
    a = torch.ones(3, 1, dtype=torch.float64)
    g = torch.tensor([[1.0, 0.0], [1.0, 0.1], [10.0, 5.0]], dtype=torch.float64)
    assert select_partners(pairwise_tracin(a, g))[0].item() == 2
    assert select_partners(pairwise_tracin(a, g, normalize=True))[0].item() == 1


# ---- rows != columns (the DDP case) -----------------------------------------------------------

@pytest.mark.parametrize("normalize", [False, True])
def test_tracin_rows_against_global_columns(normalize):
    world, local = 3, 4
    layer, x1, x2, z1, z2 = _linear_problem(world * local, torch.float64, seed=21)
    grads = _grads_closed_form(layer, x1, x2, z1, z2)
    full = pairwise_tracin([x1, x2], grads, normalize=normalize)
    partners_full = select_partners(full)
    for rank in range(world):
        rows = slice(rank * local, (rank + 1) * local)
        part = pairwise_tracin([x1[rows], x2[rows]], [grads[0][rows], grads[1][rows]], normalize=normalize,
                               acts_cols=[x1, x2], grads_cols=grads)
        assert part.shape == (local, world * local)
        torch.testing.assert_close(part, full[rows], rtol=1e-12, atol=1e-12)
        partners = select_partners(part, exclude_self_offset=rank * local)
        torch.testing.assert_close(partners, partners_full[rows])
    if normalize:
        torch.testing.assert_close(full.diagonal(), torch.ones(world * local, dtype=torch.float64))


def test_tracin_rows_against_columns_brute_force():
    layer, x1, x2, z1, z2 = _linear_problem(10, torch.float64, seed=22)
    _, flat = _brute_force_gram(layer, x1, x2, z1, z2)
    grads = _grads_closed_form(layer, x1, x2, z1, z2)
    part = pairwise_tracin([x1[7:], x2[7:]], [grads[0][7:], grads[1][7:]],
                           acts_cols=[x1, x2], grads_cols=grads)
    assert_gram_close(part, flat[7:] @ flat.T, torch.float64)


def test_tracin_half_precision_is_scored_in_float32():
    a, g = torch.randn(4, 3).half(), torch.randn(4, 2).bfloat16()
    assert pairwise_tracin(a, g).dtype == torch.float32


@pytest.mark.parametrize("kwargs", [
    dict(acts=[torch.ones(3, 2)], grads=[torch.ones(3, 4), torch.ones(3, 4)]),
    dict(acts=[torch.ones(3, 2), torch.ones(2, 2)], grads=[torch.ones(3, 4), torch.ones(2, 4)]),
    dict(acts=torch.ones(3, 2), grads=torch.ones(4, 4)),
    dict(acts=torch.ones(3), grads=torch.ones(3)),
    dict(acts=[], grads=[]),
    dict(acts=torch.ones(3, 2), grads=torch.ones(3, 4), acts_cols=torch.ones(5, 2)),
    dict(acts=torch.ones(3, 2), grads=torch.ones(3, 4), acts_cols=torch.ones(5, 3), grads_cols=torch.ones(5, 4)),
])
def test_tracin_rejects_inconsistent_inputs(kwargs):
    with pytest.raises(ValueError):
        pairwise_tracin(**kwargs)


# ---- select_partners --------------------------------------------------------------------------

def test_select_partners_golden_and_never_self():
    scores = torch.tensor([[9.0, 1.0, 3.0],
                           [2.0, 9.0, 5.0],
                           [7.0, 8.0, 9.0]])
    assert select_partners(scores).tolist() == [2, 2, 1]


@pytest.mark.parametrize("offset", [0, 3, 8])
def test_select_partners_with_offset_never_picks_self(offset):
    g = torch.Generator().manual_seed(offset)
    rows, cols = 4, 12
    scores = torch.randn(rows, cols, generator=g)
    idx = torch.arange(rows)
    scores[idx, idx + offset] = 100.0     # self always scores highest, as raw TracIn's T_ii may
    partners = select_partners(scores, exclude_self_offset=offset)
    assert partners.dtype == torch.long and partners.shape == (rows,)
    assert (partners != idx + offset).all()
    masked = scores.clone()
    masked[idx, idx + offset] = -float("inf")
    torch.testing.assert_close(partners, masked.argmax(1))


def test_select_partners_ties_and_degenerate_rows():
    assert select_partners(torch.zeros(3, 3)).tolist() == [1, 0, 0]            # lowest index wins
    inf = float("inf")
    # Every other score -inf: still not self.
    assert select_partners(torch.tensor([[0.0, -inf], [-inf, 0.0]])).tolist() == [1, 0]
    assert select_partners(torch.full((2, 3), -inf)).tolist() == [1, 0]


def test_select_partners_integer_scores_and_offset():
    scores = torch.tensor([[1, 5, 2], [7, 0, 9]])
    # Row 0's self is column 1, row 1's self is column 2.
    assert select_partners(scores, exclude_self_offset=1).tolist() == [2, 0]


@pytest.mark.parametrize("scores, offset", [
    (torch.zeros(3), 0), (torch.zeros(1, 1), 0), (torch.zeros(2, 4), 3), (torch.zeros(2, 4), -1),
])
def test_select_partners_rejects_bad_shapes(scores, offset):
    with pytest.raises(ValueError):
        select_partners(scores, exclude_self_offset=offset)


# ---- nearest-neighbour control ----------------------------------------------------------------

def test_nearest_neighbour_scores_are_cosines():
    z = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0], [-1.0, 0.1]], dtype=torch.float64)
    scores = nearest_neighbour_scores(z)
    expected = torch.nn.functional.cosine_similarity(z[:, None, :], z[None, :, :], dim=-1)
    torch.testing.assert_close(scores, expected)
    torch.testing.assert_close(scores.diagonal(), torch.ones(4, dtype=torch.float64))
    assert select_partners(scores).tolist() == [2, 2, 1, 1]
    # Rows against other columns.
    torch.testing.assert_close(nearest_neighbour_scores(z[2:], z), expected[2:])
    assert not nearest_neighbour_scores(z.clone().requires_grad_()).requires_grad


# ---- extra_positive_loss ----------------------------------------------------------------------

def test_extra_positive_loss_golden():
    p1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p2 = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    z1_cols = torch.tensor([[0.0, 1.0], [-1.0, 0.0], [1.0, 0.0]])
    z2_cols = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    partners = torch.tensor([2, 0])
    # Row 0 -> partner 2: l(p1_0, z2_2) = l([1,0],[0,-1]) = 2; l(p2_0, z1_2) = l([1,0],[1,0]) = 0
    # Row 1 -> partner 0: l(p1_1, z2_0) = l([0,1],[1,0]) = 2;  l(p2_1, z1_0) = l([1,0],[0,1]) = 2
    # mean([2 + 0, 2 + 2]) = 3
    assert extra_positive_loss(p1, p2, z1_cols, z2_cols, partners).item() == pytest.approx(3.0)


def test_extra_positive_loss_with_identity_partners_is_byol_and_targets_detached():
    g = torch.Generator().manual_seed(0)
    p1, p2 = (torch.randn(5, 4, generator=g).requires_grad_() for _ in range(2))
    z1, z2 = (torch.randn(5, 4, generator=g).requires_grad_() for _ in range(2))
    loss = extra_positive_loss(p1, p2, z1, z2, torch.arange(5))
    torch.testing.assert_close(loss, symmetric_byol_loss(p1, p2, z1, z2)[0])
    loss.backward()
    assert p1.grad is not None and p2.grad is not None
    assert z1.grad is None and z2.grad is None


def test_extra_positive_loss_rejects_bad_partners():
    p = torch.ones(3, 2)
    with pytest.raises(ValueError):
        extra_positive_loss(p, p, torch.ones(6, 2), torch.ones(6, 2), torch.tensor([0, 1]))
    with pytest.raises(ValueError):
        extra_positive_loss(p, p, torch.ones(6, 2), torch.ones(5, 2), torch.tensor([0, 1, 2]))


def test_tracin_pipeline_end_to_end():
    """Score, select, extra loss: what the byol-tracin method does in one step."""
    layer, x1, x2, z1, z2 = _linear_problem(8, torch.float32, seed=9)
    grads = _grads_autograd(layer, x1, x2, z1, z2)
    partners = select_partners(pairwise_tracin([x1, x2], grads))
    assert (partners != torch.arange(8)).all()
    loss = extra_positive_loss(layer(x1), layer(x2), z1, z2, partners)
    loss.backward()
    assert torch.isfinite(loss) and layer.weight.grad.abs().sum() > 0
