"""The README's promises that code can check: the two quick-start commands, the example
method file (it registers and trains), and CI calling the README's test command."""
import re
from pathlib import Path

import torch

from byol_bench.config import DEFAULTS
from byol_bench.method import METHODS, StepContext
from byol_bench.models.backbones import build_backbone

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_quick_start_is_two_commands_and_ci_runs_the_test_command():
    block = re.search(r"## Quick start\s+```bash\n(.*?)```", README, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ['pip install -e ".[dev]" && python run_bench.py', "python -m pytest"]
    assert "python -m pytest" in (ROOT / ".ci" / "run").read_text()
    assert "__" not in README.replace("__init__", "")   # no unfilled placeholder


def test_readme_example_method_registers_and_trains(tmp_path, monkeypatch):
    code = re.search(r"```python\n# methods/byol_mine.py\n(.*?)```", README, re.S).group(1)
    if "byol-mine" not in METHODS:
        exec(compile(code, "methods/byol_mine.py", "exec"), {"__name__": "byol_bench.methods.byol_mine"})
    cls = METHODS.get("byol-mine")
    cfg = {**DEFAULTS, "byol": {**DEFAULTS["byol"], "proj_hidden": 16, "proj_dim": 8, "pred_hidden": 16}}
    method = cls(build_backbone("small-cnn", in_channels=1, width=4), cfg,
                 cls.resolve_options("byol-mine", {"lam": 0.5}), 10, "multiclass")
    views = [torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)]
    loss, logs = method.training_step(method.online, views, StepContext(0, 0, 1, 1))
    loss.backward()
    assert torch.isfinite(loss) and "loss/var" in logs
    assert loss.item() > logs["loss/byol"].item()
