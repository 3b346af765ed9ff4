"""The paper methods and controls are registered and listed with descriptions; `--methods all`
puts all of them in the grid except the six BN ablation rows, which `byol-nobn-*` selects."""
import subprocess
import sys
from pathlib import Path

from byol_bench.method import METHODS

REPO = Path(__file__).resolve().parents[1]
IN_ALL = ["byol", "byol-ccsl", "byol-cssl", "byol-nn", "byol-nobn", "byol-tracin", "random-init", "supervised"]
ABLATION = ["byol-nobn-gn", "byol-nobn-gn-ws", "byol-nobn-ln", "byol-nobn-ln-ws", "byol-nobn-none", "byol-nobn-none-ws"]
EXPECTED = IN_ALL + ABLATION


def _cli(*args):
    return subprocess.run([sys.executable, "run_bench.py", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_registry_holds_every_method_with_a_one_line_description():
    reg = METHODS
    assert set(EXPECTED) <= set(reg.names())
    for name in EXPECTED:
        text = METHODS.describe(name)
        assert text and "\n" not in text


def test_methods_all_dry_run_and_list_show_every_method(tmp_path):
    dry = _cli("--methods", "all", "--dry-run", "--results-dir", str(tmp_path), "--seeds", "1")
    assert dry.returncode == 0, dry.stderr
    grid = {line.split(" / ")[1] for line in dry.stdout.splitlines() if " / " in line}
    assert set(IN_ALL) <= grid and not grid & set(ABLATION)
    ablation = _cli("--methods", "byol-nobn-*", "--dry-run", "--results-dir", str(tmp_path), "--seeds", "1")
    assert ablation.returncode == 0, ablation.stderr
    assert {line.split(" / ")[1] for line in ablation.stdout.splitlines() if " / " in line} == set(ABLATION)
    listing = _cli("--list")
    assert listing.returncode == 0, listing.stderr
    methods_block = listing.stdout.split("datasets:")[0]
    for name in EXPECTED:
        line = next(l for l in methods_block.splitlines() if l.split() and l.split()[0] == name)
        assert len(line.split()) > 1  # name + description
