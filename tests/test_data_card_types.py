"""Issue 15, item 12 (cards): a card with a wrong type or malformed YAML is one line naming
its file and the field, and makes only that card unusable: --list and the other datasets
keep working, and naming the bad card is that one line (exit 2)."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import byol_bench
from byol_bench.data.card import DatasetCard
from byol_bench.errors import UserError

ROOT = Path(byol_bench.__file__).resolve().parents[1]  # the checkout under test, for the subprocess
GOOD = ("name: x\nloader: imagefolder\nchannels: 1\nmean: [0.5]\nstd: [0.5]\n"
        "splits: {train: 0.6, val: 0.2, test: 0.2}\n")


@pytest.mark.parametrize("change, field", [
    ("mean: 5", "mean"),
    ("std: [0.0]", "std"),
    ("classes: 3", "classes"),
    ("classes: [0, 1]", "classes"),
    ("splits: [train, val, test]", "splits"),
    ("split_seed: abc", "split_seed"),
    ("split_seed: -1", "split_seed"),
    ("image_size: 0", "image_size"),
    ("channels: two", "channels"),
    ("aliases: x", "aliases"),
    ("description: [a]", "description"),
    ("options: [a]", "options"),
    ("download: {files: {url: 'https://x.org/a'}}", "download.files"),
])
def test_wrong_types_are_one_line_naming_file_and_field(tmp_path: Path, change: str, field: str):
    key = change.split(":")[0]
    text = "".join(line + "\n" for line in GOOD.splitlines() if not line.startswith(key + ":")) + change + "\n"
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as err:
        DatasetCard.from_yaml(path)
    message = str(err.value)
    assert "\n" not in message and f"dataset card {path}: {field} " in message, message


def test_malformed_yaml_is_one_line_with_its_position(tmp_path: Path):
    path = tmp_path / "x.yaml"
    path.write_text("name: x\nloader: imagefolder\nclasses: [a, b\nmean: [0.5]\n")
    with pytest.raises(UserError) as err:
        DatasetCard.from_yaml(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and "not valid YAML" in message and "line " in message


def test_a_bad_card_leaves_every_other_command_working(tmp_path: Path):
    """Bad cards beside the shipped ones (registered as a plugin folder would be): --list exits
    0 and marks each unusable with its reason; the shipped datasets plan as before; naming a bad
    card is one line, exit 2."""
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "badmean.yaml").write_text(GOOD.replace("name: x", "name: badmean").replace("mean: [0.5]", "mean: 5"))
    (cards / "broken.yaml").write_text("name: broken\nloader: [imagefolder\n")
    (cards / "escape.yaml").write_text(GOOD.replace("name: x", "name: escape") + "root: ../../etc\n")
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from byol_bench.data import register_cards, DATASETS
        DATASETS.names()              # the shipped cards first
        register_cards(Path({str(cards)!r}))
        from byol_bench.cli import main
        args = ["--config", {str(ROOT / "configs/smoke.yaml")!r}, "--results-dir", {str(tmp_path / "r")!r}]
        sys.exit(main(sys.argv[1:] + args))
    """)

    def cli(*argv):
        return subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True,
                              cwd=ROOT, timeout=300, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})

    listing = cli("--list")
    assert listing.returncode == 0, listing.stderr
    lines = {line.split()[0]: line for line in listing.stdout.splitlines() if line.startswith("  ")}
    assert "UNUSABLE" in lines["badmean"] and f"{cards / 'badmean.yaml'}: mean must be" in lines["badmean"]
    assert "UNUSABLE" in lines["broken"] and "not valid YAML" in lines["broken"]
    assert "UNUSABLE" in lines["escape"] and "root must be a relative path inside --data-root" in lines["escape"]
    assert "UNUSABLE" not in lines["digits"]

    planned = cli("--datasets", "digits", "--methods", "byol", "--seeds", "1", "--dry-run")
    assert planned.returncode == 0 and "1 runs in the grid" in planned.stdout, planned.stderr

    used = cli("--datasets", "badmean", "--dry-run")
    assert used.returncode == 2 and "Traceback" not in used.stderr
    assert used.stderr.strip().splitlines() == [f"error: dataset card {cards / 'badmean.yaml'}: mean must be "
                                                f"a list of numbers, one per channel, got 5"]
    assert not (tmp_path / "r").exists()
