"""Two CPU processes (accelerate's debug_launcher: fork + gloo): the grid runs once, only the
main process writes Sacred runs, and DDP training completes.

The launcher runs in a fresh interpreter: forking a process whose torch thread pool is already
running (as it is after other tests) can deadlock the children."""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import sys
    from accelerate import debug_launcher

    def bench(results_dir):
        from harness.cli import main
        code = main(["--config", "configs/smoke.yaml", "--results-dir", results_dir,
                     "--methods", "byol", "--seeds", "1", "--set", "backbone.width=4",
                     "--set", "byol.proj_hidden=16", "--set", "byol.pred_hidden=16",
                     "--set", "byol.proj_dim=8"])
        assert code == 0

    debug_launcher(bench, args=(sys.argv[1],), num_processes=2)
""")


def test_two_process_run_is_observed_once(tmp_path):
    results = tmp_path / "results"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(results)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    folders = [p for p in (results / "runs").iterdir() if p.name.isdigit()]
    assert len(folders) == 1
    run = json.loads((folders[0] / "run.json").read_text())
    assert run["status"] == "COMPLETED", run.get("fail_trace")
    assert run["result"]["linear/accuracy"] > 0.1
    info = json.loads((folders[0] / "info.json").read_text())
    assert info["world_size"] == 2
