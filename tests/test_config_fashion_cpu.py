"""configs/fashion-cpu.yaml: every method of --methods all, enough seeds for Holm to call a
difference significant, a stated subsample."""
import math
from pathlib import Path

from byol_bench.config import load_config
from byol_bench.plan.grid import expand_grid
from byol_bench.method import METHODS

ROOT = Path(__file__).resolve().parents[1]


def test_fashion_cpu_grid_runs_every_method_with_enough_seeds(tmp_path):
    cfg = load_config(ROOT / "configs/fashion-cpu.yaml")
    specs = expand_grid(cfg, tmp_path / "runs")
    methods = METHODS.select("all")
    assert sorted({s.method for s in specs}) == sorted(methods) and {s.dataset for s in specs} == {"fashion-mnist"}
    n_seeds = len({s.seed for s in specs})
    comparisons = len(methods) - 1
    # the smallest Holm-adjusted exact Wilcoxon p with n seeds is comparisons * 2 / 2^n
    assert comparisons * 2 / 2 ** n_seeds < 0.05 and n_seeds >= math.ceil(math.log2(2 * comparisons / 0.05))
    assert all(s.config["data"]["train_subsample"] == 16000 and s.config["data"]["image_size"] == 16 for s in specs)
