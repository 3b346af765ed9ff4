"""The wheel (pyproject.toml): one top-level package, byol_bench, holding harness/ and methods/,
with the cards and configs as package data; run from an empty folder it sees what a checkout
sees. Built from a copy of this checkout (nothing is written into it: a stale build/ there
could slip old files into a wheel), without build isolation (no index needed)."""
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What a checkout's root may hold that a build never reads: the copy skips it.
NOT_COPIED = {".git", "results", "build", "dist", "data", "byol_bench.egg-info", ".venv", ".venv-ci", ".pytest_cache"}


def _not_copied(folder: str, names: list[str]) -> set[str]:
    return ({n for n in names if n in NOT_COPIED} if Path(folder) == ROOT else set()) | {"__pycache__"} & set(names)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("setuptools", reason="building the wheel needs setuptools (pip install -e '.[dev]')")
    tmp = tmp_path_factory.mktemp("wheel")
    shutil.copytree(ROOT, tmp / "src", ignore=_not_copied)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                            "-w", str(tmp / "dist"), str(tmp / "src")], timeout=120, capture_output=True, text=True)
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    built, = (tmp / "dist").glob("byol_bench-*.whl")
    return built


def test_the_wheel_holds_byol_bench_and_its_metadata_only(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    dist_info = next(n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info"))
    assert {n.split("/")[0] for n in names} == {"byol_bench", dist_info}  # no harness, methods, tests, datasets
    package = {n.removeprefix("byol_bench/") for n in names if n.startswith("byol_bench/")}
    modules = {p.relative_to(ROOT / "harness").as_posix() for p in (ROOT / "harness").rglob("*.py")}
    modules |= {f"methods/{p.relative_to(ROOT / 'methods').as_posix()}" for p in (ROOT / "methods").rglob("*.py")}
    cards = {f"cards/{p.name}" for p in (ROOT / "datasets").glob("*.yaml")}
    configs = {f"configs/{p.name}" for p in (ROOT / "configs").glob("*.yaml")}
    assert cards and configs and "__main__.py" in modules
    assert package == modules | cards | configs
    # The package's __init__ is harness/'s, never the checkout's shim (which maps a checkout).
    with zipfile.ZipFile(wheel) as z:
        assert z.read("byol_bench/__init__.py") == (ROOT / "harness" / "__init__.py").read_bytes()
        entry_points = z.read(f"{dist_info}/entry_points.txt").decode()
    assert "[console_scripts]\nbyol-bench = byol_bench.cli:main" in entry_points


def test_installed_from_the_wheel_it_lists_what_a_checkout_lists_from_an_empty_folder(wheel, tmp_path):
    """pip install --target: the package alone, on PYTHONPATH, run where no checkout is."""
    site, empty = tmp_path / "site", tmp_path / "empty"
    empty.mkdir()
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site),
                              str(wheel)], timeout=120, capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-2000:]
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run([sys.executable, "-c", "import byol_bench, byol_bench.shipped as s; "
                            "print(byol_bench.__file__); print(s.shipped('cards')); print(s.shipped('configs'))"],
                           cwd=empty, env=env, capture_output=True, text=True, timeout=60)
    assert where.returncode == 0, where.stderr
    assert all(line.startswith(str(site / "byol_bench")) for line in where.stdout.splitlines()), where.stdout
    # Both listings at once (each imports torch): the installed one must equal the checkout's.
    installed = subprocess.Popen([sys.executable, "-m", "byol_bench", "--list"], cwd=empty, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkout = subprocess.run([sys.executable, str(ROOT / "run_bench.py"), "--list"], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
    out, err = installed.communicate(timeout=120)
    assert installed.returncode == 0 and checkout.returncode == 0, err + checkout.stderr
    assert "UNUSABLE" not in out and "\n  digits " in out and "\n  byol " in out and "\n  stl10-paper " in out
    assert out == checkout.stdout


def test_a_launchers_child_imports_the_parents_checkout_from_any_folder(tmp_path):
    """local.py and slurm.py start `python -m byol_bench` of this interpreter; from a checkout the
    child gets the checkout first on PYTHONPATH (never a path the code computes for itself)."""
    from byol_bench.launch.common import child_env, entry_point
    assert entry_point("--list") == [sys.executable, "-m", "byol_bench", "--list"]
    env = child_env({k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    child = subprocess.run([sys.executable, "-c", "import byol_bench; print(byol_bench.CHECKOUT)"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=60)
    assert child.returncode == 0 and child.stdout.strip() == str(ROOT), child.stderr


def test_slurm_without_submitit_names_the_extra_in_one_line(tmp_path):
    """submitit is the slurm extra: a Python where it cannot be imported (None in sys.modules)."""
    code = ("import sys; sys.modules['submitit'] = None\nfrom byol_bench.cli import main\n"
            f"sys.exit(main(['--config', 'smoke', '--launcher', 'slurm', '--results-dir', {str(tmp_path / 'r')!r}]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr == ('error: --launcher slurm needs submitit, the slurm extra: pip install "byol-bench[slurm]" '
                          '(in a checkout: pip install -e ".[slurm]")\n')


def test_an_installed_runs_provenance_names_its_version_instead_of_a_commit():
    from byol_bench.report.provenance import _commit_label
    installed = {"experiment": {"dependencies": ["numpy==2.0", "byol-bench==0.1.0"], "repositories": []}}
    checkout = {"experiment": {"dependencies": [], "repositories": [{"commit": "abcdef0123456789", "dirty": True}]}}
    assert _commit_label(installed) == "none (installed byol-bench 0.1.0)"
    assert _commit_label(checkout) == "abcdef0123 (dirty)"
    assert _commit_label({}) == "not recorded"
