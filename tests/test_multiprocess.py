"""Two CPU processes (accelerate's debug_launcher: fork + gloo): the grid runs once, only the
main process writes Sacred runs, and DDP training completes."""
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bench(results_dir: str):
    from harness.cli import main
    code = main(["--config", str(ROOT / "configs/smoke.yaml"), "--results-dir", results_dir,
                 "--methods", "byol", "--seeds", "1", "--set", "backbone.width=4",
                 "--set", "byol.proj_hidden=16", "--set", "byol.pred_hidden=16", "--set", "byol.proj_dim=8"])
    assert code == 0


def test_two_process_run_is_observed_once(tmp_path):
    from accelerate import debug_launcher
    results = tmp_path / "results"
    debug_launcher(_bench, args=(str(results),), num_processes=2)
    folders = [p for p in (results / "runs").iterdir() if p.name.isdigit()]
    assert len(folders) == 1
    run = json.loads((folders[0] / "run.json").read_text())
    assert run["status"] == "COMPLETED", run.get("fail_trace")
    assert run["result"]["linear/accuracy"] > 0.1
    info = json.loads((folders[0] / "info.json").read_text())
    assert info["world_size"] == 2
