"""scripts/gpu-check.sh --cpu: the prepared GPU check's dry run on the CPU at toy sizes. Every
check runs the command the GPU run would (or is skipped with its reason) and lands in one JSON."""
import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_cpu_dry_run_runs_every_check_and_writes_one_json(tmp_path):
    out = tmp_path / "gpu-check"
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu-check.sh"), "--cpu", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "gpu-check.json").read_text())
    assert report["mode"] == "cpu"
    checks = {c["name"]: c for c in report["checks"]}
    assert list(checks)[:1] == ["smoke"] and {"peers", "overhead", "step-r18", "step-r50-channels-last"} <= set(checks)
    for name, check in checks.items():
        if "skipped" in check:  # only lightly's absence, the budget or compile on the CPU skip a check
            assert "lightly" in check["skipped"] or "budget" in check["skipped"] \
                or ("compile" in name and "--cpu" in check["skipped"]), check
            continue
        assert check["rc"] == 0 and (out / f"{name}.log").exists(), check
    ran = [c for c in checks.values() if "skipped" not in c]
    assert checks["smoke"] in ran and (out / "smoke" / "LEADERBOARD.md").exists()
    step_figures = [f for name in ("step-r18", "step-r50") for f in checks[name]["figures"]]
    assert step_figures and all(f["method"] == "byol" and f["step_ms"] > 0 for f in step_figures), step_figures
