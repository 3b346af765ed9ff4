#!/usr/bin/env bash
# The prepared GPU check (issue 17): one NVIDIA GPU, at most 8 minutes, one JSON of figures.
#
#   scripts/gpu-check.sh OUT_DIR          # CUDA: the checks below at their real sizes
#   scripts/gpu-check.sh --cpu OUT_DIR    # a dry run on the CPU at toy sizes (CI runs it)
#
# Checks, in order of importance (a check that would start with too little of the 8 minutes
# left is recorded as skipped, with why):
#   smoke      the smoke grid (configs/smoke.yaml) in bf16
#   step-*     benchmarks.step, BYOL: ResNet-18 at 96 px (batch 256) and ResNet-50 at 224 px
#              (batch 128), each with and without pretrain.channels_last; then with
#              pretrain.compile (torch.compile's first step compiles: those come last)
#   peers      benchmarks.peers: our BYOL step against lightly's on identical work
#              (skipped with the reason where lightly is not installed: pip install ".[peers]")
#   overhead   benchmarks.overhead: the harness's training loop against a bare loop
# OUT_DIR/gpu-check.json holds, per check, its command, exit status, seconds, every JSON line
# it printed and, when it failed, the end of its output; OUT_DIR/<check>.log its whole output.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=cuda
if [ "${1:-}" = "--cpu" ]; then mode=cpu; shift; fi
if [ $# -ne 1 ]; then echo "usage: scripts/gpu-check.sh [--cpu] OUT_DIR" >&2; exit 2; fi
out=$1
mkdir -p "$out"

MODE="$mode" OUT="$out" BUDGET_S="${GPU_CHECK_BUDGET_S:-480}" python - <<'EOF'
import json, os, platform, subprocess, sys, time
from pathlib import Path

mode, out, budget = os.environ["MODE"], Path(os.environ["OUT"]), float(os.environ["BUDGET_S"])
py = sys.executable
cuda = mode == "cuda"
if cuda:
    import torch
    if not torch.cuda.is_available():
        sys.exit("gpu-check: no CUDA device visible (use --cpu for the CPU dry run)")

def step(name, backbone, size, batch, *sets, steps, warmup):
    cmd = [py, "-m", "benchmarks.step", "--methods", "byol", "--backbone", backbone, "--image-size", str(size),
           "--batch-size", str(batch), "--steps", str(steps), "--warmup", str(warmup), "--device", mode]
    for s in sets:
        cmd += ["--set", s]
    return name, cmd

if cuda:
    sizes = {"r18": ("resnet18", 96, 256), "r50": ("resnet50", 224, 128)}
    steps = dict(steps=20, warmup=5)
    smoke = [py, "run_bench.py", "--config", "smoke", "--results-dir", str(out / "smoke"),
             "--set", "pretrain.mixed_precision=bf16"]
    peers = [py, "-m", "benchmarks.peers", "--device", "cuda", "--pairs", "10", "--warmup", "3"]
    overhead = [py, "-m", "benchmarks.overhead", "--device", "cuda"]
else:  # toy sizes: the same commands and code paths, seconds each
    sizes = {"r18": ("resnet18", 16, 8), "r50": ("resnet50", 32, 4)}
    steps = dict(steps=1, warmup=0)
    smoke = [py, "run_bench.py", "--config", "smoke", "--results-dir", str(out / "smoke"), "--methods", "byol",
             "--seeds", "1", "--protocols", "knn", "--set", "pretrain.mixed_precision=bf16",
             "--set", "data.train_subsample=64", "--set", "pretrain.batch_size=32", "--set", "run.log_with=none"]
    peers = [py, "-m", "benchmarks.peers", "--device", "cpu", "--image-size", "16", "--batch-size", "8",
             "--pairs", "1", "--warmup", "0"]
    overhead = [py, "-m", "benchmarks.overhead", "--device", "cpu", "--epochs", "2"]

checks = [("smoke", smoke)]
for key, (backbone, size, batch) in sizes.items():
    checks.append(step(f"step-{key}", backbone, size, batch, **steps))
    checks.append(step(f"step-{key}-channels-last", backbone, size, batch, "pretrain.channels_last=true", **steps))
checks += [("peers", peers), ("overhead", overhead)]
for key, (backbone, size, batch) in sizes.items():  # compiling takes the longest: last
    checks.append(step(f"step-{key}-compile", backbone, size, batch, "pretrain.compile=true", **steps))
    checks.append(step(f"step-{key}-compile-channels-last", backbone, size, batch, "pretrain.compile=true",
                       "pretrain.channels_last=true", **steps))

def lightly_missing() -> bool:
    return subprocess.run([py, "-c", "import lightly"], capture_output=True).returncode != 0

started = time.monotonic()
report = {"mode": mode, "host": platform.node(), "python": platform.python_version(), "budget_s": budget,
          "checks": []}
if cuda:
    report["device"] = torch.cuda.get_device_name(0)
for name, cmd in checks:
    left = budget - (time.monotonic() - started)
    entry = {"name": name, "command": " ".join(cmd)}
    if name == "peers" and lightly_missing():
        entry.update(skipped='lightly is not installed (pip install ".[peers]")')
    elif "compile" in name and not cuda:
        entry.update(skipped="--cpu: torch.compile's first step takes minutes on a CPU (tests/test_speed_settings.py covers the setting)")
    elif left < 20:
        entry.update(skipped=f"{left:.0f} s of the {budget:.0f} s budget left")
    else:
        t0 = time.monotonic()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=left)
            rc, text = proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as exc:
            partial = exc.stdout or ""
            rc, text = "timeout", partial.decode(errors="replace") if isinstance(partial, bytes) else partial
        (out / f"{name}.log").write_text(text)
        figures = []
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("{") and line.endswith("}"):
                try:
                    figures.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
        entry.update(rc=rc, seconds=round(time.monotonic() - t0, 1), figures=figures)
        if rc != 0:
            entry["tail"] = text[-3000:]
    report["checks"].append(entry)
    print(f"gpu-check: {name}: " + (f"skipped ({entry['skipped']})" if "skipped" in entry
                                    else f"rc {entry['rc']}, {entry['seconds']} s"), flush=True)
report["seconds"] = round(time.monotonic() - started, 1)
(out / "gpu-check.json").write_text(json.dumps(report, indent=1) + "\n")
failed = [c["name"] for c in report["checks"] if c.get("rc", 0) != 0]
print(f"gpu-check: {len(report['checks'])} checks in {report['seconds']} s; wrote {out / 'gpu-check.json'}"
      + (f"; FAILED: {', '.join(failed)}" if failed else ""))
sys.exit(1 if failed else 0)
EOF
