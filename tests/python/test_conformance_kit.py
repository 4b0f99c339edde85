"""The conformance matcher is what makes every scenario able to fail: it must refuse what differs."""

from __future__ import annotations

from conformance_kit import matches


def test_the_matcher_refuses_what_differs() -> None:
    assert matches({"a": 1}, {"a": 1, "b": 2}), "keys not expected are ignored"
    assert matches({"a": None}, {}), "a missing key reads as None"
    assert matches(1, 1.0000001), "numbers within 1e-6"
    assert not matches(1, 1.00001)
    assert not matches([1, 2], [1, 2, 3]), "lists of another length"
    assert not matches({"a": {"b": 1}}, {"a": {"b": 2}}), "nested objects"
    assert not matches(True, 1) and not matches(1, True), "a boolean is not a number"
    assert not matches(1, "1")
    assert not matches("x", "y")
    assert not matches({"a": 1}, [1])
