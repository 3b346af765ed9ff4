"""The store read by every command survives what a shared disk holds (issue 15, items 8 and 9):
run folders that are empty, truncated or hold JSON that is not an object are named in one
line each and never crash a command; the leaderboard's files are replaced atomically, so a
reader sees the old file or the new one, never half of one."""
import json
import threading
from pathlib import Path

from byol_bench.cli import main

from test_leaderboard import build_store

ROOT = Path(__file__).resolve().parents[1]
# random-init trains nothing: a real completed run in a second.
GRID = ["--config", str(ROOT / "configs/smoke.yaml"), "--methods", "random-init", "--seeds", "1",
        "--set", "backbone.width=4"]

BROKEN = {  # folder -> (file, content, what the warning must say)
    "90": ("run.json", "", "run.json is empty"),
    "91": ("run.json", '{"status": "COMPL', "run.json is not valid JSON (truncated?)"),
    "92": ("run.json", "[]", "run.json holds a JSON list, not an object"),
    "93": ("config.json", "[]", "config.json holds a JSON list, not an object"),
    "94": ("config.json", "17", "config.json holds a JSON int, not an object"),
}


def break_folders(runs: Path) -> None:
    for name, (file, content, _) in BROKEN.items():
        folder = runs / name
        folder.mkdir(parents=True)
        other = "config.json" if file == "run.json" else "run.json"
        (folder / other).write_text(json.dumps({"status": "COMPLETED"} if other == "run.json" else {}))
        (folder / file).write_text(content)


def test_unreadable_run_folders_are_named_once_and_never_crash(tmp_path, capsys):
    results = tmp_path / "results"
    assert main([*GRID, "--results-dir", str(results)]) == 0
    break_folders(results / "runs")
    from byol_bench.store import records
    for extra in (["--leaderboard"], ["--status"], ["--dry-run"], []):
        records._reported.clear()  # each command is its own process in real use
        capsys.readouterr()
        assert main([*GRID, "--results-dir", str(results), *extra]) == 0, extra
        err = capsys.readouterr().err
        for name, (_, _, why) in BROKEN.items():
            assert err.count(f"warning: run folder {results / 'runs' / name} skipped: {why}\n") == 1, (extra, err)
    board = (results / "LEADERBOARD.md").read_text()
    assert "random-init" in board


def test_each_unreadable_folder_gets_its_own_line(tmp_path, capsys):
    from byol_bench.store import records
    records._reported.clear()
    runs = tmp_path / "runs"
    break_folders(runs)
    assert records.load_runs(runs) == []
    err = capsys.readouterr().err.splitlines()
    assert err == [f"warning: run folder {runs / name} skipped: {why}" for name, (_, _, why) in BROKEN.items()]
    records.load_runs(runs)
    assert capsys.readouterr().err == ""  # named once per process


def test_leaderboard_files_are_replaced_atomically(tmp_path):
    """A handle opened on the old files still reads them whole after a rebuild (rename, not an
    in-place rewrite), and a reader polling during rebuilds never sees invalid JSON or a cut PNG."""
    from byol_bench.report.leaderboard import write_leaderboard
    root = build_store(tmp_path / "results")
    write_leaderboard(root)
    files = [root / "LEADERBOARD.md", root / "leaderboard.json", *sorted((root / "figures").glob("*.png"))]
    assert len(files) > 3
    handles = [open(path, "rb") for path in files]
    before = [path.read_bytes() for path in files]
    try:
        write_leaderboard(root)
        for path, handle, old in zip(files, handles, before):
            assert handle.read() == old, f"{path.name} was rewritten in place"
    finally:
        for handle in handles:
            handle.close()

    stop, bad, reads = threading.Event(), [], [0]

    def read_loop():
        while not stop.is_set():
            text = (root / "leaderboard.json").read_text()
            png = files[-1].read_bytes()
            reads[0] += 1
            try:
                json.loads(text)
            except ValueError:
                bad.append("json")
            if not (png.startswith(b"\x89PNG") and png.endswith(b"IEND\xaeB`\x82")):
                bad.append("png")

    reader = threading.Thread(target=read_loop)
    reader.start()
    try:
        for _ in range(3):
            write_leaderboard(root)
    finally:
        stop.set()
        reader.join(timeout=30)
    assert reads[0] > 0 and bad == []
