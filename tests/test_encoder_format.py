"""Saved encoders are safetensors with their metadata (byol_bench.store.encoders): tensors come back
bit for bit, the metadata as the .pt dict held it, and a store's old .pt encoders are read and
evaluated as they are, never pretrained again for their format."""
import json
import math
import re

import torch
import torch.nn as nn
from safetensors import safe_open

from byol_bench.cli import main
from byol_bench.run.build import build_method
from byol_bench.store.encoders import encoder_fingerprints, encoder_path, load_encoder, save_encoder
from byol_bench.store.staleness import pretraining_fingerprints


STATS = {"img_per_s": 123.25, "seconds": 0.1 + 0.2, "peak_mem_mb": float("nan")}
CURVES = [["train/loss", 1.0 / 3.0, 1], ["train/loss", -0.0, 2], ["train/tau", float("inf"), 2]]
FINGERPRINTS = {"method_code": [["methods/byol.py", "ab" * 8]], "shared_code": [["harness/method.py", "cd" * 8]],
                "data": {"digits": {"card": {"splits": {"train": 0.6}}, "source": "sklearn-1.9"}}}


def old_format_save(path, encoder, train_stats, pretrain_hash, run_id, curves=None, fingerprints=None):
    """save_encoder before safetensors: torch.save of one dict."""
    payload = {"state_dict": {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()},
               "train_stats": {k: float(v) for k, v in train_stats.items()},
               "pretrain_hash": pretrain_hash, "run_id": str(run_id), "curves": list(curves or [])}
    if fingerprints is not None:
        payload["fingerprints"] = fingerprints
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)


class Odd(nn.Module):
    """Every dtype a state dict may hold, special float values, a 0-dim buffer, tied and
    non-contiguous tensors (safetensors refuses shared storage unless each is copied)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 4)
        self.tied = nn.Linear(4, 4)
        self.tied.weight = self.head.weight
        with torch.no_grad():
            self.conv.weight.view(-1)[:6] = torch.tensor([float("nan"), -0.0, float("inf"), -float("inf"),
                                                          1e-45, 3.4e38])
        self.register_buffer("f16", torch.randn(5).half())
        self.register_buffer("bf16", torch.randn(5).bfloat16())
        self.register_buffer("f64", torch.randn(3, dtype=torch.float64))
        self.register_buffer("flags", torch.tensor([True, False, True]))
        self.register_buffer("u8", torch.arange(7, dtype=torch.uint8))
        self.register_buffer("transposed", torch.randn(3, 5).t())  # non-contiguous
        self.register_buffer("empty", torch.zeros(0, 4))


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(
        a.contiguous().reshape(-1).view(torch.uint8), b.contiguous().reshape(-1).view(torch.uint8))


def metadata(payload: dict) -> dict:
    return json.loads(json.dumps({k: v for k, v in payload.items() if k != "state_dict"}))  # NaN == NaN as text


def test_round_trip_is_bit_identical_and_carries_the_old_formats_metadata(tmp_path):
    torch.manual_seed(0)
    model = Odd()
    model.bn(torch.randn(2, 4, 3, 3))  # running stats and num_batches_tracked (0-dim int64) move
    path = encoder_path(tmp_path, "abc")
    assert path.name == "abc.safetensors"
    save_encoder(path, model, STATS, "abc", 17, CURVES, FINGERPRINTS)
    with safe_open(path, framework="pt") as f:  # what other tools see: tensors, and JSON strings in the metadata
        assert sorted(f.metadata()) == ["curves", "fingerprints", "pretrain_hash", "run_id", "train_stats"]
        assert json.loads(f.metadata()["fingerprints"]) == FINGERPRINTS and f.metadata()["run_id"] == "17"
    new = load_encoder(path)
    expected = model.state_dict()
    assert sorted(new["state_dict"]) == sorted(expected)
    assert all(same_bits(new["state_dict"][k], v) for k, v in expected.items())

    old_path = tmp_path / "old" / "abc.pt"
    old_format_save(old_path, model, STATS, "abc", 17, CURVES, FINGERPRINTS)
    old = load_encoder(old_path)
    assert metadata(new) == metadata(old)
    assert new["run_id"] == "17" and new["curves"][1][1] == 0.0 and math.copysign(1, new["curves"][1][1]) == -1
    assert math.isnan(new["train_stats"]["peak_mem_mb"]) and new["train_stats"]["seconds"] == 0.1 + 0.2
    assert encoder_fingerprints(path) == FINGERPRINTS == encoder_fingerprints(old_path)
    fresh = Odd()
    fresh.load_state_dict(new["state_dict"])  # loads into the model as the .pt state did
    assert all(same_bits(fresh.state_dict()[k], v) for k, v in expected.items())


def test_without_fingerprints_and_unreadable_files(tmp_path):
    path = encoder_path(tmp_path, "abc")
    save_encoder(path, nn.Linear(2, 2), STATS, "abc", "3")
    assert "fingerprints" not in load_encoder(path) and encoder_fingerprints(path) is None
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # truncated
    assert load_encoder(path) is None and encoder_fingerprints(path) is None
    from safetensors.torch import save_file
    save_file({"w": torch.zeros(2)}, path)  # a safetensors file, not one of ours
    assert load_encoder(path) is None
    assert load_encoder(tmp_path / "missing.safetensors") is None


def test_an_old_pt_encoder_is_found_read_and_replaced_by_a_new_save(tmp_path):
    model = nn.Linear(3, 2)
    legacy = tmp_path / "encoders" / "abc.pt"
    old_format_save(legacy, model, STATS, "abc", "5", CURVES, FINGERPRINTS)
    assert encoder_path(tmp_path, "abc") == legacy  # only the old file exists: that is the encoder
    payload = load_encoder(legacy)
    assert payload["run_id"] == "5" and encoder_fingerprints(legacy) == FINGERPRINTS
    assert all(same_bits(payload["state_dict"][k], v) for k, v in model.state_dict().items())
    save_encoder(encoder_path(tmp_path, "abc"), model, STATS, "abc", "6", CURVES, FINGERPRINTS)
    assert sorted(p.name for p in (tmp_path / "encoders").iterdir()) == ["abc.safetensors"]
    now = encoder_path(tmp_path, "abc")
    assert now.suffix == ".safetensors" and load_encoder(now)["run_id"] == "6"


def test_a_store_with_an_old_pt_encoder_evaluates_it_and_pretrains_nothing(tmp_path, capsys):
    from test_stale_results import tiny_store  # the same one-run grid

    results = tmp_path / "results"
    args, rc = tiny_store(results)
    encoder = build_method(rc, 1, 10, "multiclass").encoder
    legacy = encoder_path(results, rc["pretrain_hash"]).with_suffix(".pt")
    old_format_save(legacy, encoder, {"img_per_s": 10.0, "seconds": 2.0, "peak_mem_mb": 1.0}, rc["pretrain_hash"],
                    "41", [["train/loss", 1.5, 1]], pretraining_fingerprints(rc["fingerprints"], rc["dataset"]))

    assert main([*args, "--dry-run"]) == 0
    assert re.search(r"^evaluate +digits / byol / seed 0", capsys.readouterr().out, re.M)
    assert main(args) == 0
    assert "1 completed, 0 failed" in capsys.readouterr().out
    (run,) = (results / "runs").glob("[0-9]*")
    info = json.loads((run / "info.json").read_text())
    assert info["pretrain_steps"] == 0 and info["pretrained_by"]["run_id"] == "41"
    assert json.loads((run / "metrics.json").read_text())["train/loss"]["values"] == [1.5]
    assert sorted(p.name for p in (results / "encoders").iterdir()) == [legacy.name]  # kept as it is
