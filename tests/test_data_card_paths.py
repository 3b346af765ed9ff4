"""Issue 15, item 11: a card (from someone else's repository) never reads or writes outside
--data-root: http(s) downloads only; root, download dest/filename, archive members and loader
path options stay inside; each refusal is one line naming the card file and the field."""
import dataclasses
import functools
import hashlib
import http.server
import io
import re
import tarfile
import threading
from pathlib import Path

import pytest

from byol_bench.data.card import DatasetCard
from byol_bench.data.catalog import get_card
from byol_bench.data.download import download_card
from byol_bench.data.load import load_from_card
from byol_bench.errors import UserError

CARD = "name: evil\nloader: imagefolder\nsplits: {train: 0.6, val: 0.2, test: 0.2}\n"
ENTRY = "{url: %s, md5: 00000000000000000000000000000000%s}"


@pytest.mark.parametrize("extra, field", [
    ("root: /etc\n", "root"),
    ("root: ../../etc\n", "root"),
    ("root: images/../../outside\n", "root"),
    ("download: {files: [" + ENTRY % ("'file:///etc/passwd'", "") + "]}\n", r"download.files\[0\].url"),
    ("download: {files: [" + ENTRY % ("'ftp://example.org/a.zip'", "") + "]}\n", r"download.files\[0\].url"),
    ("download: {files: [" + ENTRY % ("'https://example.org/a.zip'", ", filename: ../../../escaped.txt") + "]}\n",
     r"download.files\[0\].filename"),
    ("download: {files: [" + ENTRY % ("'https://example.org/a.zip'", ", dest: ../..") + "]}\n",
     r"download.files\[0\].dest"),
    ("download: {files: [" + ENTRY % ("'https://example.org/a.zip'", ", dest: /tmp") + "]}\n",
     r"download.files\[0\].dest"),
    ("download: {files: [" + ENTRY % ("'https://example.org/..'", "") + "]}\n", r"download.files\[0\].url"),
])
def test_card_paths_outside_the_data_root_are_refused_at_load(tmp_path: Path, extra: str, field: str):
    path = tmp_path / "evil.yaml"
    path.write_text(CARD + extra)
    with pytest.raises(UserError) as err:
        DatasetCard.from_yaml(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    assert re.search(field, message), message


def test_a_card_built_in_code_cannot_download_outside_the_data_root(tmp_path: Path):
    """download_card checks the card itself (a card built in code skips from_yaml): the exact
    reproduction of the issue writes nothing, anywhere."""
    served = tmp_path / "www"
    served.mkdir()
    (served / "a.txt").write_text("payload")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served)))
    server.RequestHandlerClass.log_message = lambda *a: None
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        digest = hashlib.md5(b"payload").hexdigest()
        url = f"http://127.0.0.1:{server.server_address[1]}/a.txt"
        data_root = tmp_path / "a" / "b" / "data"
        base = get_card("dermamnist")
        for entry in ({"url": url, "md5": digest, "filename": "../../../escaped.txt"},
                      {"url": url, "md5": digest, "dest": "../..", "filename": "escaped.txt"},
                      {"url": (served / "a.txt").as_uri(), "md5": digest}):
            card = dataclasses.replace(base, download={**base.download, "files": [entry]})
            with pytest.raises(UserError, match="must be an http|plain file|inside --data-root"):
                download_card(card, data_root, progress=False)
        assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "a" / "escaped.txt").exists()
        assert not data_root.exists()
    finally:
        server.shutdown()
        server.server_close()


def test_tar_members_leaving_the_destination_are_refused_by_name(tmp_path: Path):
    from byol_bench.data.download import extract
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as t:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 1
        t.addfile(info, io.BytesIO(b"x"))
    (tmp_path / "data").mkdir()
    with pytest.raises(UserError, match="unsafe member"):
        extract(get_card("stl10"), archive, tmp_path / "data")
    assert not (tmp_path / "escaped.txt").exists()


@pytest.mark.parametrize("loader, options, field", [
    ("imagefolder", {"split_folders": {"train": ["train"], "test": ["../../etc"]}}, "options.split_folders"),
    ("isic2019", {"labels_csv": "/etc/passwd"}, "options.labels_csv"),
    ("isic2019", {"extension": ".jpg/../../x"}, "options.extension"),
    ("chestxray14", {"train_list": "../../list.txt"}, "options.train_list"),
    ("idx", {"prefixes": {"train": "../../train", "test": "t10k"}}, "options.prefixes"),
    ("idx", {"fallback_dirs": ["/etc"]}, "options.fallback_dirs"),
    ("idx", {"fallback_dirs": ["/usr/share/datasets/../../../etc"]}, "options.fallback_dirs"),
])
def test_loader_path_options_stay_inside_the_dataset(tmp_path: Path, loader: str, options: dict, field: str):
    card = DatasetCard(name="evil", loader=loader, root="evil", channels=1, mean=(0.5,), std=(0.5,),
                       classes=("a", "b"), splits={"train": 0.8, "val": 0.2, "test": "official"},
                       options=options)
    (tmp_path / "evil").mkdir()
    with pytest.raises(UserError, match=field.replace(".", r"\.")) as err:
        load_from_card(card, tmp_path)
    assert "\n" not in str(err.value)


def test_the_debian_fallback_stays_allowed():
    """fashion-mnist's fallback to Debian's package folder is under the fixed system folder."""
    from byol_bench.data.formats.idx import idx_options
    assert idx_options(get_card("fashion-mnist"))["fallback_dirs"] == ["/usr/share/datasets/fashion-mnist"]
