"""RAM at real sizes: datasets are memory-mapped from the decoded cache (one copy per machine,
decoded by one process), and pretraining reads train + unlabeled through a view, never a
concatenated copy. The figures at STL10's size come from `python -m benchmarks.memory`."""
import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate import Accelerator

from fixtures_data import make_stl10
from byol_bench.training.augment import Normalize, ViewDataset
from benchmarks.step import build_method
from byol_bench.config import load_config
from byol_bench.data import ConcatImages, load_dataset, load_dataset_shared
from byol_bench.data.images import array_to_channels
from byol_bench.data.views import ChannelsView, as_tensor, with_channels
from byol_bench.errors import UserError
from byol_bench.evaluation.context import extract_features

from byol_bench.models.backbones import build_backbone
from byol_bench.training.loader import make_loader

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def stl10(tmp_path):
    truth = make_stl10(tmp_path / "data", per_class=10, n_test=10, n_unlabeled=7)
    data = load_dataset_shared("stl10", tmp_path / "data", None, tmp_path / "cache", Accelerator(cpu=True))
    return data, truth, tmp_path / "cache"


def test_cached_splits_are_read_only_memory_maps_of_the_cache_files(stl10):
    data, truth, cache = stl10
    folder, = cache.iterdir()
    for split in ("train", "val", "test", "unlabeled"):
        x = data.images[split]
        assert isinstance(x, np.memmap) and x.mode == "r" and not x.flags.writeable, split
        assert Path(x.filename) == folder / f"{split}.images.npy"
    np.testing.assert_array_equal(data.images["unlabeled"], truth["unlabeled_x"])
    np.testing.assert_array_equal(data.images["test"], truth["test_x"])


def test_pretrain_view_indexes_train_then_unlabeled_without_concatenating(stl10):
    data, _, _ = stl10
    train, unlabeled = data.images["train"], data.images["unlabeled"]
    n = len(train)
    view = data.pretrain_images()
    assert isinstance(view, ConcatImages)
    assert view.parts[0] is train and view.parts[1] is unlabeled   # the maps themselves, no copy
    assert len(view) == n + 7 and view.shape == (n + 7, 3, 96, 96) and view.dtype == np.uint8
    full = np.concatenate([train, unlabeled])                       # the old copy, as the truth
    np.testing.assert_array_equal(view[0], train[0])
    np.testing.assert_array_equal(view[n], unlabeled[0])
    np.testing.assert_array_equal(view[-1], unlabeled[-1])
    idx = np.array([n + 6, 0, n, n - 1, 3, n + 2, 3])               # both splits, unsorted, repeated
    np.testing.assert_array_equal(view[idx], full[idx])
    np.testing.assert_array_equal(view[n - 2:n + 3], full[n - 2:n + 3])   # a slice across the seam
    np.testing.assert_array_equal(view[::5], full[::5])
    mask = np.arange(n + 7) % 3 == 0
    np.testing.assert_array_equal(view[mask], full[mask])
    assert view[idx].flags.writeable and view[3].flags.writeable   # torch.from_numpy can wrap them
    with pytest.raises(IndexError):
        view[n + 7]
    with pytest.raises(IndexError):
        view[np.array([0, n + 7])]
    assert len(data.images["val"]) == 10 and n == 90   # val (carved from the 100) and test stay out


def test_training_loader_reads_the_view_and_its_batches_are_the_images(stl10):
    data, _, _ = stl10
    cfg = load_config(None, ["backbone.width=4", "byol.proj_hidden=16", "byol.pred_hidden=16",
                             "byol.proj_dim=8", "pretrain.batch_size=8", "pretrain.drop_last=false"])
    method = build_method("byol", cfg, channels=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # torch warns when it wraps a read-only array
        loader = make_loader(method, data, cfg, Accelerator(cpu=True), seed=0)
        assert isinstance(loader.dataset.images, ConcatImages)
        seen = [row.tobytes() for images, _ in loader for row in images.numpy()]
    view = data.pretrain_images()
    assert sorted(seen) == sorted(view[i].tobytes() for i in range(len(view)))   # one epoch = every image once
    np.testing.assert_array_equal(loader.dataset[95][0].numpy(), data.images["unlabeled"][5])
    for (x, y), i in zip(loader.dataset.__getitems__([95, 3, 95]), [95, 3, 95]):   # the batched fetch
        torch.testing.assert_close(x, loader.dataset[i][0], rtol=0, atol=0)
        assert y == loader.dataset[i][1]


def test_features_and_channel_views_read_memory_maps_batch_by_batch(stl10):
    data, truth, _ = stl10
    torch.manual_seed(0)
    enc = build_backbone("small-cnn", in_channels=3, width=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        feats = extract_features(enc, data.images["test"], Normalize(data.card.mean, data.card.std), 4, torch.device("cpu"))
        assert as_tensor(data.images["test"][2:5]).shape == (3, 3, 96, 96)
    assert feats.shape == (10, enc.feat_dim) and torch.isfinite(feats).all()

    gray = with_channels(data.images["test"], 1)   # a transfer target in a grey source's channels
    assert isinstance(gray, ChannelsView) and gray.shape == (10, 1, 96, 96)
    want = array_to_channels(truth["test_x"], 1)
    np.testing.assert_array_equal(gray[[4, 1]], want[[4, 1]])
    np.testing.assert_array_equal(gray[2], want[2])
    np.testing.assert_array_equal(with_channels(gray, 3)[0:2], np.repeat(want[0:2], 3, axis=1))
    assert with_channels(data.images["test"], 3) is data.images["test"]
    ds = ViewDataset(gray, [])
    assert ds[3][0].shape == (1, 96, 96) and ds[3][0].dtype == torch.uint8


LAUNCH = textwrap.dedent("""
    import json, logging, sys
    from pathlib import Path
    from accelerate import Accelerator, debug_launcher

    def worker(tmp):
        import numpy as np
        from byol_bench.data import load_dataset_shared
        from byol_bench.errors import UserError
        acc = Accelerator(cpu=True)
        rank, out = acc.process_index, {}
        try:   # missing data: every process gets the same one-line error, none waits forever
            load_dataset_shared("stl10", Path(tmp) / "nodata", None, Path(tmp) / "cache", acc)
        except UserError as exc:
            out["missing"] = str(exc).splitlines()[0]
        records = []
        handler = logging.Handler()
        handler.emit = lambda r: records.append(r.getMessage())
        log = logging.getLogger("byol_bench.data.cache")
        log.addHandler(handler); log.setLevel(logging.INFO)
        data = load_dataset_shared("stl10", Path(tmp) / "data", None, Path(tmp) / "cache", acc)
        out["log"] = records
        out["files"] = {k: [type(v).__name__, str(v.filename)] for k, v in data.images.items()}
        view = data.pretrain_images()
        out["sum"] = int(view[np.arange(len(view))].sum(dtype=np.int64))
        Path(tmp, f"rank{rank}.json").write_text(json.dumps(out))

    debug_launcher(worker, args=(sys.argv[1],), num_processes=2)
""")


def test_two_processes_one_decode_then_both_map_the_same_files(tmp_path):
    truth = make_stl10(tmp_path / "data", per_class=3, n_test=10, n_unlabeled=7)
    proc = subprocess.run([sys.executable, "-c", LAUNCH, str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    main, other = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert main["missing"] == other["missing"]
    assert main["missing"].startswith("dataset 'stl10': ") and "nodata" in main["missing"]
    assert any("building the decoded cache" in m for m in main["log"])     # the main process decodes
    assert not any("building" in m for m in other["log"]) and any("cache hit" in m for m in other["log"])
    assert main["files"] == other["files"] and {t for t, _ in main["files"].values()} == {"memmap"}
    here = load_dataset("stl10", tmp_path / "data", None, tmp_path / "cache", mmap=True)
    np.testing.assert_array_equal(here.images["unlabeled"], truth["unlabeled_x"])
    assert main["sum"] == other["sum"] == int(np.asarray(here.pretrain_images()).sum(dtype=np.int64))
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")] == []   # no temp left


def test_bad_view_input_is_refused():
    with pytest.raises(ValueError, match="cannot join"):
        ConcatImages([np.zeros((2, 3, 4, 4), np.uint8), np.zeros((2, 1, 4, 4), np.uint8)])
    with pytest.raises(UserError, match="converts between 1 and 3"):
        ChannelsView(np.zeros((2, 3, 4, 4), np.uint8), 3)


def test_bench_memory_shows_the_cache_pages_shared_by_two_processes(tmp_path, capsys):
    """The benchmark at a tiny size: each process maps every page of the cache, and its
    proportional share (Pss) of those pages is half their Rss: one copy, two processes."""
    from benchmarks.memory import main
    assert main(["--train", "90", "--val", "10", "--test", "20", "--unlabeled", "300", "--batches", "2",
                 "--tmp", str(tmp_path)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    cache_mib = 420 * 3 * 96 * 96 / 2**20
    assert summary["pretrain_images"] == 390 and len(summary["per_process"]) == 2
    for r in summary["per_process"]:
        assert abs(r["touched_cache_Rss"] - cache_mib) < 1, r
        assert abs(r["touched_cache_Pss"] - cache_mib / 2) < 1, r
        # Nothing copied privately: a copy would add the whole cache; imports and the loader's
        # own buffers on the way add a few MiB (2.9 on this machine's packages).
        assert r["touched_Anonymous"] - r["imported_Anonymous"] < cache_mib / 2, r
    assert list(tmp_path.iterdir()) == []   # the synthetic cache is deleted
