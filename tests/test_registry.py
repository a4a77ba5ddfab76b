"""``lumigrad.registry.Registry``: names in registration order, one entry per name, messages that list them."""

import pytest

from lumigrad.registry import Registry


def test_registry_keeps_order_and_refuses_duplicates_and_bad_names():
    r = Registry("widget")
    r.register("b", 2)
    r.register("a", 1)
    assert r.names() == ("b", "a") and list(r) == ["b", "a"] and r["a"] == 1 and "a" in r and 3 not in r
    assert r.choices() == "'b', 'a'" and r.get("c") is None and len(r) == 2
    with pytest.raises(ValueError, match="widget 'a' is already registered"):
        r.register("a", 3)
    r.register("a", 3, replace=True)
    assert r["a"] == 3 and r.names() == ("b", "a")
    with pytest.raises(ValueError, match="widget name must start with a letter"):
        r.register("1x", 0)
    with pytest.raises(KeyError, match="unknown widget 'c'; choose one of 'b', 'a'"):
        r["c"]
    assert r.unregister("b") == 2 and r.names() == ("a",)

    @r.decorator("f")
    def f():
        return 1

    assert r["f"] is f
