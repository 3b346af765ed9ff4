import pytest

from byol_bench.errors import UserError
from byol_bench.registry import Registry, UnknownNameError


def make():
    reg = Registry("widget")

    @reg.register("byol", description="the base")
    def byol():
        return 1

    @reg.register("byol-nobn-gn", aliases=("gn",))
    def gn():
        """GroupNorm variant.

        More text."""

    reg.add("byol-nobn-ln", object(), description="LN")
    reg.add("simclr", object())
    reg.add("byol-nobn-none", object(), in_all=False)
    return reg


def test_lookup_alias_and_description():
    reg = make()
    assert reg.get("byol")() == 1
    assert reg.canonical("gn") == "byol-nobn-gn"
    assert reg.describe("gn") == "GroupNorm variant."
    assert reg.names() == ["byol", "byol-nobn-gn", "byol-nobn-ln", "byol-nobn-none", "simclr"]


def test_unknown_name_lists_valid_names():
    reg = make()
    with pytest.raises(UnknownNameError) as err:
        reg.get("byl")
    msg = str(err.value)
    assert "unknown widget 'byl'" in msg
    for name in reg.names():
        assert name in msg
    assert isinstance(err.value, UserError)


def test_select_all_list_and_wildcards_keep_order_without_duplicates():
    reg = make()
    assert reg.select("all") == ["byol", "byol-nobn-gn", "byol-nobn-ln", "simclr"]  # not ablation rows
    assert reg.select("simclr,byol") == ["simclr", "byol"]
    assert reg.select("byol-nobn-*") == ["byol-nobn-gn", "byol-nobn-ln", "byol-nobn-none"]
    assert reg.select("byol-nobn-none") == ["byol-nobn-none"]
    assert reg.select(["byol*", "byol"]) == ["byol", "byol-nobn-gn", "byol-nobn-ln", "byol-nobn-none"]
    assert reg.select("gn, byol") == ["byol-nobn-gn", "byol"]


def test_select_errors():
    reg = make()
    with pytest.raises(UnknownNameError, match="no widget matches 'moco\\*'"):
        reg.select("moco*")
    with pytest.raises(UserError, match="no widget selected"):
        reg.select(" , ")
    with pytest.raises(UnknownNameError, match="valid widgets: byol"):
        reg.select("byol,nope")


def test_double_registration_is_refused():
    reg = make()
    with pytest.raises(ValueError, match="registered twice"):
        reg.add("byol", object())
    with pytest.raises(ValueError, match="registered twice"):
        reg.add("other", object(), aliases=("gn",))
