"""Numbers as Go gave them (issue 20): whole floats are whole numbers, fractions print as
Go's ``fmt.Sprint`` prints a float64."""

from __future__ import annotations

import pytest

from mecha.numbers import attribute_number, go_float_text, whole


@pytest.mark.parametrize(
    ("value", "printed"),
    [
        # what `go run` prints for fmt.Sprint(float64(...)) of each
        (0.5, "0.5"), (0.25, "0.25"), (-0.25, "-0.25"), (3.14159, "3.14159"),
        (0.0001, "0.0001"), (0.00001, "1e-05"), (2.5e-7, "2.5e-07"),
        (123456.5, "123456.5"), (100000.0, "100000"), (1e6, "1e+06"),
        (1234567.5, "1.2345675e+06"), (1e20, "1e+20"), (1e21, "1e+21"), (1.5e300, "1.5e+300"),
        (0.0, "0"), (0.1 + 0.2, "0.30000000000000004"),
        (float("inf"), "+Inf"), (float("-inf"), "-Inf"), (float("nan"), "NaN"),
    ],
)  # fmt: skip
def test_a_float_prints_as_go_prints_it(value: float, printed: str) -> None:
    assert go_float_text(value) == printed


@pytest.mark.parametrize(
    ("value", "attribute"),
    [(5.0, 5), (5, 5), (-3.0, -3), (1234567.0, 1234567), (0.25, "0.25"),
     (1234567.5, "1.2345675e+06"), (1e20, "1e+20")],
)  # fmt: skip
def test_a_payloads_number_as_an_attribute(value: float, attribute: int | str) -> None:
    """Whole numbers are ints (as a filter and a template see an int); 1e20 is beyond a
    bigint, so it is Go's text."""
    found = attribute_number(value)
    assert found == attribute and type(found) is type(attribute)


@pytest.mark.parametrize(
    ("value", "made"), [(500.0, 500), (500, 500), (500.5, 500.5), ("500", "500"), (True, True)]
)
def test_whole_changes_only_whole_valued_floats(value: object, made: object) -> None:
    found = whole(value)
    assert found == made and type(found) is type(made)
