"""The folder layout is the data flow (README "folder" table): imports point one way.

Every `from harness.X import ...` (at module level or inside a function) between two packages
of the tree must go from a later stage to an earlier one; method files import only the method
contract and the pure parts. A new module in a new package must be given its stage here.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Stage of each package: an import must go to a strictly lower stage.
STAGE = {
    "harness.errors": 0,
    "harness.registry": 1, "harness.config": 1,
    "harness.models": 2, "harness.data": 2, "harness.method": 2, "harness.losses": 2, "harness.store": 2,
    "harness.training": 3,
    "harness.evaluation": 4,
    "harness.plan": 5,
    "harness.run": 6, "harness.report": 6,
    "harness.launch": 7,
    "harness.cli": 8,
}
METHOD_FILES_MAY_IMPORT = {"harness.errors", "harness.method", "harness.losses", "harness.models"}


def package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "harness" and len(parts) > 1 else parts[0]


def imports(folder: str):
    """(file, its package, imported package) for every from-import of the repo's own code."""
    for path in sorted((ROOT / folder).rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.split(".")[0] in ("harness", "methods", "benchmarks"):
                    yield path.relative_to(ROOT), package_of(module), package_of(node.module)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] in ("harness", "methods", "benchmarks"):
                        yield path.relative_to(ROOT), package_of(module), package_of(alias.name)


def test_every_harness_package_has_a_stage():
    packages = {package_of(".".join(p.relative_to(ROOT).with_suffix("").parts))
                for p in (ROOT / "harness").glob("*") if p.suffix == ".py" or p.is_dir()}
    packages -= {"harness.__init__", "harness.__pycache__"}
    assert packages <= set(STAGE), sorted(packages - set(STAGE))


def test_harness_imports_point_from_later_stages_to_earlier_ones():
    wrong = [f"{path}: {src} -> {dst}" for path, src, dst in imports("harness")
             if src != dst and not STAGE[dst] < STAGE[src]]
    assert not wrong, "\n".join(wrong)


def test_method_files_import_only_the_contract_and_the_pure_parts():
    wrong = [f"{path}: {dst}" for path, _, dst in imports("methods")
             if dst.startswith("harness") and dst not in METHOD_FILES_MAY_IMPORT]
    assert not wrong, "\n".join(wrong)


def test_no_product_code_imports_the_timing_tools():
    wrong = [f"{path}" for folder in ("harness", "methods") for path, _, dst in imports(folder)
             if dst == "benchmarks"]
    assert not wrong, wrong
