"""The folder layout is the data flow (README "folder" table): imports point one way.

Every `from byol_bench.X import ...` (harness/ is imported as byol_bench, methods/ as byol_bench.methods) (at module level or inside a function) between two packages
of the tree must go from a later stage to an earlier one; method files import only the method
contract and the pure parts. A new module in a new package must be given its stage here.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Stage of each package: an import must go to a strictly lower stage.
STAGE = {
    "byol_bench.errors": 0,
    "byol_bench.registry": 1, "byol_bench.config": 1, "byol_bench.shipped": 1,
    "byol_bench.models": 2, "byol_bench.data": 2, "byol_bench.method": 2, "byol_bench.losses": 2, "byol_bench.store": 2,
    "byol_bench.training": 3,
    "byol_bench.evaluation": 4,
    "byol_bench.plan": 5,
    "byol_bench.run": 6, "byol_bench.report": 6,
    "byol_bench.launch": 7,
    "byol_bench.cli": 8,
    "byol_bench.__main__": 9,  # python -m byol_bench
}
METHOD_FILES_MAY_IMPORT = {"byol_bench.errors", "byol_bench.method", "byol_bench.losses", "byol_bench.models"}


def package_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "byol_bench" and len(parts) > 1:
        return "byol_bench.methods" if parts[1] == "methods" else ".".join(parts[:2])
    return parts[0]


def imports(folder: str):
    """(file, its package, imported package) for every from-import of the repo's own code."""
    for path in sorted((ROOT / folder).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        # The import name of a checkout path: harness/ is byol_bench, methods/ is byol_bench.methods.
        parts = {"harness": ("byol_bench",), "methods": ("byol_bench", "methods")}.get(parts[0], parts[:1]) + parts[1:]
        module = ".".join(parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.split(".")[0] in ("byol_bench", "benchmarks") and node.module != "byol_bench":
                    yield path.relative_to(ROOT), package_of(module), package_of(node.module)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    # The root package (its checkout shim or the wheel's __init__) is no stage.
                    if alias.name.split(".")[0] in ("byol_bench", "benchmarks") and alias.name != "byol_bench":
                        yield path.relative_to(ROOT), package_of(module), package_of(alias.name)


def test_every_harness_package_has_a_stage():
    packages = {package_of("byol_bench." + p.with_suffix("").name)
                for p in (ROOT / "harness").glob("*") if p.suffix == ".py" or p.is_dir()}
    packages -= {"byol_bench.__init__", "byol_bench.__pycache__"}
    assert packages <= set(STAGE), sorted(packages - set(STAGE))


def test_harness_imports_point_from_later_stages_to_earlier_ones():
    wrong = [f"{path}: {src} -> {dst}" for path, src, dst in imports("harness")
             if src != dst and not STAGE[dst] < STAGE[src]]
    assert not wrong, "\n".join(wrong)


def test_method_files_import_only_the_contract_and_the_pure_parts():
    wrong = [f"{path}: {dst}" for path, _, dst in imports("methods")
             if dst.startswith("byol_bench") and dst != "byol_bench.methods" and dst not in METHOD_FILES_MAY_IMPORT]
    assert not wrong, "\n".join(wrong)


def test_no_product_code_imports_the_timing_tools():
    wrong = [f"{path}" for folder in ("harness", "methods") for path, _, dst in imports(folder)
             if dst == "benchmarks"]
    assert not wrong, wrong
