"""Extending without a fork (issue 16): a throwaway plugin package, installed with pip, adds a
method, a dataset card and a backbone through its entry points; a one-run grid uses all three;
after `pip uninstall` the leaderboard rebuilds identically from the store alone.

The venv is made from this interpreter without pip and without installing any dependency: a
.pth file puts this environment's site-packages and the checkout on its path (seconds, not the
minutes a full install takes). The plugin itself is a real pip install into that venv, so its
entry points are found in its installed dist-info by importlib.metadata, the way a user's are.
"""
import json
import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

from bounded import deadline

ROOT = Path(__file__).resolve().parents[1]
DIST = "byolplug-demo"

PYPROJECT = f"""
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "{DIST}"
version = "0.1"

[tool.setuptools]
packages = ["byolplug_demo", "byolplug_demo.cards"]
package-data = {{"byolplug_demo.cards" = ["*.yaml"]}}

[project.entry-points."byol_bench.methods"]
demo = "byolplug_demo.methods"

[project.entry-points."byol_bench.backbones"]
demo = "byolplug_demo.backbones"

[project.entry-points."byol_bench.cards"]
demo = "byolplug_demo.cards"
"""

METHOD = '''
from byol_bench.method import METHODS
from byol_bench.methods.byol import BYOL


@METHODS.register("byol-plug")
class PlugBYOL(BYOL):
    """BYOL, registered by a plugin package (the variant adds no loss term)."""

    def extra_loss(self, out, ctx):
        return None, {}
'''

BACKBONE = '''
import torch.nn as nn

from byol_bench.models.backbones import BACKBONES, Encoder


@BACKBONES.register("plug-mlp")
def plug_mlp(in_channels: int, image_size: int, width: int) -> Encoder:
    """One hidden layer on the pixels, from a plugin package."""
    return Encoder(nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size ** 2, width), nn.ReLU()), width)
'''

# Imported only when asked (never by an entry point): a name taken by the harness.
CLASH = '''
from byol_bench.method import METHODS
from byol_bench.methods.byol import BYOL

METHODS.register("byol")(type("Byol", (BYOL,), {}))
'''

# In the venv: --list, the one-run grid, the leaderboard, then a clash (one process: fast).
INSTALLED = """
import sys
from byol_bench.cli import main
from byol_bench.errors import UserError
from byol_bench.registry import import_plugins
grid, board = sys.argv[1].split(), sys.argv[2].split()
assert main(["--list"]) == 0
assert main(grid) == 0
assert main(board) == 0
try:
    import_plugins(["byolplug_demo.clash"])
except UserError as exc:
    print("CLASH:", exc)
"""

# In the venv after the uninstall: the leaderboard again, and the plugin's names are gone.
UNINSTALLED = """
import sys
from byol_bench.cli import main
grid, board = sys.argv[1].split(), sys.argv[2].split()
assert main(board) == 0
assert main([*grid, "--dry-run"]) == 2
"""


def make_plugin(folder: Path) -> Path:
    package = folder / "byolplug_demo"
    (package / "cards").mkdir(parents=True)
    (folder / "pyproject.toml").write_text(PYPROJECT)
    (package / "__init__.py").write_text("")
    (package / "methods.py").write_text(METHOD)
    (package / "backbones.py").write_text(BACKBONE)
    (package / "clash.py").write_text(CLASH)
    (package / "cards" / "__init__.py").write_text("")
    digits = (ROOT / "datasets" / "digits.yaml").read_text()
    (package / "cards" / "digits-plug.yaml").write_text(
        digits.replace("name: digits", "name: digits-plug").replace("image_size: 16", "image_size: 8"))
    return folder


def make_venv(folder: Path) -> Path:
    """A venv of this interpreter that sees this environment's packages and the checkout."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=60)
    python = folder / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    Path(purelib, "parent-env.pth").write_text(f"{sysconfig.get_paths()['purelib']}\n{ROOT}\n")
    return python


def test_an_installed_plugin_runs_and_its_runs_outlive_it(tmp_path: Path):
    with deadline(240):
        python = make_venv(tmp_path / "venv")
        plugin = make_plugin(tmp_path / "plugin")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the venv's .pth alone
        pip = [sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check", "-q"]
        install = subprocess.run([*pip, "install", "--no-deps", "--no-build-isolation", "--no-index", str(plugin)],
                                 capture_output=True, text=True, env=env, timeout=180)
        assert install.returncode == 0, install.stderr[-2000:]

        results = tmp_path / "results"
        grid = ["--config", str(ROOT / "configs/smoke.yaml"), "--methods", "byol-plug", "--datasets", "digits-plug",
                "--protocols", "linear", "--set", "backbone.name=plug-mlp", "--set", "backbone.width=8",
                "--set", "byol.proj_hidden=16", "--set", "byol.pred_hidden=16", "--set", "byol.proj_dim=8",
                "--results-dir", str(results)]
        board = ["--config", str(ROOT / "configs/smoke.yaml"), "--leaderboard", "--results-dir", str(results)]
        run = subprocess.run([str(python), "-c", INSTALLED, " ".join(grid), " ".join(board)], cwd=tmp_path,
                             capture_output=True, text=True, env=env, timeout=180)
        assert run.returncode == 0, run.stderr[-3000:]
        listing = run.stdout
        for name in ("byol-plug", "plug-mlp", "digits-plug"):  # each shown with its package
            [line] = [line for line in listing.splitlines() if line.startswith(f"  {name} ")]
            assert f"(from {DIST} (" in line and "byolplug_demo" in line, line
        # A plugin's name taken by the harness: one line naming both packages.
        clash = [line for line in run.stdout.splitlines() if line.startswith("CLASH:")]
        assert len(clash) == 1 and "method 'byol' is registered twice" in clash[0], run.stdout[-2000:]
        assert "byol-bench (byol_bench.methods.byol)" in clash[0] and f"{DIST} (byolplug_demo.clash)" in clash[0]

        [record] = [p for p in (results / "runs").iterdir() if p.name.isdigit()]
        config = json.loads((record / "config.json").read_text())
        assert json.loads((record / "run.json").read_text())["status"] == "COMPLETED"
        assert (config["method"], config["dataset"], config["backbone"]["name"]) == ("byol-plug", "digits-plug", "plug-mlp")
        assert config["fingerprints"]["method_code"][0][0] == "byolplug_demo/methods.py"
        installed = (results / "LEADERBOARD.md").read_text(), (results / "leaderboard.json").read_text()
        assert "byol-plug" in installed[0] and "digits-plug" in installed[0]

        uninstall = subprocess.run([*pip, "uninstall", "-y", DIST], capture_output=True, text=True, env=env,
                                   timeout=120)
        assert uninstall.returncode == 0, uninstall.stderr[-2000:]
        after = subprocess.run([str(python), "-c", UNINSTALLED, " ".join(grid), " ".join(board)], cwd=tmp_path,
                               capture_output=True, text=True, env=env, timeout=180)
        assert after.returncode == 0, after.stderr[-3000:]
        assert "unknown method 'byol-plug'" in after.stderr  # gone with its dist-info: no path trick found it

    gone = (results / "LEADERBOARD.md").read_text(), (results / "leaderboard.json").read_text()

    def undated(markdown: str) -> list[str]:
        return [line for line in markdown.splitlines() if not line.startswith("Generated ")]

    assert undated(gone[0]) == undated(installed[0])
    assert gone[1] == installed[1]
