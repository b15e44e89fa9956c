"""The one registry type: lookup, duplicates, and errors that list and suggest names."""

from __future__ import annotations

import pytest

from complaw.compress import METHODS
from complaw.errors import CompressionError, DataError
from complaw.registry import Registry


def fruit() -> Registry[int]:
    registry: Registry[int] = Registry("fruit", DataError)
    for n, name in enumerate(("apple", "banana", "cherry")):
        registry.add(name, n)
    return registry


def test_get_iter_and_contains():
    registry = fruit()
    assert registry.get("banana") == 1
    assert list(registry) == ["apple", "banana", "cherry"]
    assert "cherry" in registry and "durian" not in registry


def test_a_name_registered_twice_is_refused():
    with pytest.raises(ValueError, match="fruit 'apple' is registered twice"):
        fruit().add("apple", 9)


def test_unknown_name_lists_the_known_and_suggests_the_closest():
    with pytest.raises(DataError) as info:
        fruit().get("banan")
    assert str(info.value) == (
        "unknown fruit 'banan'; known: apple, banana, cherry; did you mean 'banana'?"
    )


def test_no_suggestion_when_nothing_is_close():
    with pytest.raises(DataError) as info:
        fruit().get("zucchini")
    assert str(info.value) == "unknown fruit 'zucchini'; known: apple, banana, cherry"


def test_empty_registry_says_none():
    with pytest.raises(DataError, match=r"^unknown fruit 'x'; known: none$"):
        Registry[int]("fruit", DataError).get("x")


def test_real_registry_suggests_a_method():
    with pytest.raises(CompressionError, match="known: .*prunenet.*; did you mean 'prunenet'"):
        METHODS.get("prune-net")
