"""The harness's import name, `byol_bench`, in a checkout.

Installed (`pip install .`), the wheel holds one package, `byol_bench`: harness/ is its body,
methods/ its `methods` subpackage, and the cards (datasets/*.yaml) and configs (configs/*.yaml) its
package data (pyproject.toml's package-dir). Nothing else lands in site-packages, so no module of
another project (PyPI has a `harness`) is shadowed. In a checkout the design card's layout stays
as it is and this file maps the same names onto it, so `python run_bench.py`, the tests and a
plugin import `byol_bench.method` alike, wherever the code comes from.
"""
import importlib.util
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
"""The checkout this package was imported from (an installed wheel has no such attribute)."""

__path__ = [str(CHECKOUT / "harness")]
exec(compile((CHECKOUT / "harness" / "__init__.py").read_text(), str(CHECKOUT / "harness" / "__init__.py"), "exec"))


def _subpackage(name: str, folder: Path):
    spec = importlib.util.spec_from_file_location(f"{__name__}.{name}", folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


methods = _subpackage("methods", CHECKOUT / "methods")
