"""--download against a local HTTP server on 127.0.0.1 (never the internet)."""
import dataclasses
import functools
import hashlib
import http.server
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fixtures_data import make_isic, make_medmnist, make_stl10
from byol_bench.data.catalog import get_card
from byol_bench.data.load import load_from_card
from byol_bench.data.download import download_card, download_dataset
from byol_bench.errors import UserError


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def served(tmp_path: Path):
    """(folder served, base URL) of a local server."""
    folder = tmp_path / "www"
    folder.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def with_files(name: str, files: list) -> object:
    card = get_card(name)
    return dataclasses.replace(card, download={**card.download, "files": files})


def test_stl10_archive_is_fetched_verified_and_unpacked(tmp_path: Path, served):
    folder, base = served
    truth = make_stl10(tmp_path / "src", per_class=1)
    with tarfile.open(folder / "stl10_binary.tar.gz", "w:gz") as t:
        t.add(tmp_path / "src" / "stl10_binary", arcname="stl10_binary")
    card = with_files("stl10", [{"url": f"{base}/stl10_binary.tar.gz", "md5": md5(folder / "stl10_binary.tar.gz")}])
    data_root = tmp_path / "data"
    assert download_card(card, data_root, progress=False) == data_root / "stl10_binary"
    assert sorted(p.name for p in data_root.iterdir()) == ["stl10_binary"]  # archive removed after unpacking
    data = load_from_card(card, data_root)
    assert np.array_equal(data.images["test"], truth["test_x"])


def test_single_file_with_query_string_and_sha256(tmp_path: Path, served):
    folder, base = served
    make_medmnist(folder, "dermamnist", 3, 7)
    digest = hashlib.sha256((folder / "dermamnist.npz").read_bytes()).hexdigest()
    card = with_files("dermamnist", [{"url": f"{base}/dermamnist.npz?download=1", "sha256": digest}])
    download_card(card, tmp_path / "data", progress=False)
    assert (tmp_path / "data" / "dermamnist.npz").read_bytes() == (folder / "dermamnist.npz").read_bytes()
    assert len(load_from_card(card, tmp_path / "data").images["test"]) == 8


def test_checksum_mismatch_keeps_nothing(tmp_path: Path, served):
    folder, base = served
    (folder / "dermamnist.npz").write_bytes(b"tampered")
    card = with_files("dermamnist", [{"url": f"{base}/dermamnist.npz", "md5": "0" * 32}])
    with pytest.raises(UserError, match="failed its md5 check"):
        download_card(card, tmp_path / "data", progress=False)
    assert list((tmp_path / "data").iterdir()) == []


def test_http_error_and_unverified_entries(tmp_path: Path, served):
    _, base = served
    card = with_files("dermamnist", [{"url": f"{base}/nothere.npz", "md5": "0" * 32}])
    with pytest.raises(UserError, match="cannot download .*nothere.npz.*404"):
        download_card(card, tmp_path / "data", progress=False)
    card = with_files("dermamnist", [{"url": f"{base}/x.npz"}])
    with pytest.raises(UserError, match="no md5 or sha256; refusing"):
        download_card(card, tmp_path / "data", progress=False)


def test_unsafe_archives_are_refused(tmp_path: Path, served):
    folder, base = served
    with zipfile.ZipFile(folder / "evil.zip", "w") as z:
        z.writestr("../escaped.txt", "x")
    card = with_files("stl10", [{"url": f"{base}/evil.zip", "md5": md5(folder / "evil.zip")}])
    with pytest.raises(UserError, match="unsafe member"):
        download_card(card, tmp_path / "data", progress=False)
    assert not (tmp_path / "escaped.txt").exists()


def test_datasets_without_direct_download_explain_by_hand(tmp_path: Path):
    with pytest.raises(UserError, match="isic2019 and has no direct download.*challenge.isic-archive.com.*unzip"):
        download_dataset("isic", tmp_path)


def test_nothing_to_fetch_is_a_no_op(tmp_path: Path):
    make_isic(tmp_path, n=2)  # present, though not downloadable
    assert download_dataset("isic", tmp_path) == tmp_path / "isic2019"
    assert download_dataset("digits", tmp_path) == tmp_path  # embedded
    assert download_dataset("hf-example", tmp_path) == tmp_path  # hub id: fetched by datasets itself


def test_present_dataset_is_not_fetched_again(tmp_path: Path):
    make_stl10(tmp_path, per_class=1)  # the real card's URL would be the internet: it must not be used
    assert download_dataset("stl10", tmp_path) == tmp_path / "stl10_binary"
