"""The paper methods and controls are registered, listed with descriptions, and `--methods all`
puts every one of them in the grid."""
import subprocess
import sys
from pathlib import Path

from harness.method import METHODS, import_methods

REPO = Path(__file__).resolve().parents[1]
EXPECTED = ["byol", "byol-ccsl", "byol-cssl", "byol-nn", "byol-nobn", "byol-nobn-gn", "byol-nobn-gn-ws",
            "byol-nobn-ln", "byol-nobn-ln-ws", "byol-nobn-none", "byol-nobn-none-ws", "byol-tracin",
            "random-init", "supervised"]


def _cli(*args):
    return subprocess.run([sys.executable, "run_bench.py", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_registry_holds_every_method_with_a_one_line_description():
    reg = import_methods()
    assert set(EXPECTED) <= set(reg.names())
    for name in EXPECTED:
        text = METHODS.describe(name)
        assert text and "\n" not in text


def test_methods_all_dry_run_and_list_show_every_method(tmp_path):
    dry = _cli("--methods", "all", "--dry-run", "--results-dir", str(tmp_path), "--seeds", "1")
    assert dry.returncode == 0, dry.stderr
    grid = {line.split(" / ")[1] for line in dry.stdout.splitlines() if " / " in line}
    assert set(EXPECTED) <= grid
    listing = _cli("--list")
    assert listing.returncode == 0, listing.stderr
    methods_block = listing.stdout.split("datasets:")[0]
    for name in EXPECTED:
        line = next(l for l in methods_block.splitlines() if l.split() and l.split()[0] == name)
        assert len(line.split()) > 1  # name + description
