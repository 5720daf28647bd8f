"""${VAR} substitution."""

from __future__ import annotations

import pytest

from mecha.template.interpolation import UnsetVariable, expand, has_reference


def test_set_variable_is_substituted() -> None:
    """${NAME} becomes its value, inside other text too."""
    assert expand("http://${HOST}:8000/v1", {"HOST": "gpu"}) == "http://gpu:8000/v1"


def test_unset_variable_names_itself() -> None:
    """The error says which variable is missing."""
    with pytest.raises(UnsetVariable, match="VLLM_API_KEY is not set"):
        expand("${VLLM_API_KEY}", {})


def test_set_but_empty_variable_is_used() -> None:
    """An empty value is a value."""
    assert expand("a${E}b", {"E": ""}) == "ab"


def test_fallback_applies_when_unset_or_empty() -> None:
    """${NAME:-fallback} as in shells and compose files."""
    assert expand("${X:-d}", {}) == "d"
    assert expand("${X:-d}", {"X": ""}) == "d"
    assert expand("${X:-d}", {"X": "v"}) == "v"


def test_double_dollar_is_a_literal_dollar() -> None:
    """$$ escapes, and a bare $NAME is left alone."""
    assert expand("$${A} and $A", {"A": "x"}) == "${A} and $A"
    assert not has_reference("$${A} and $A")


def test_bad_reference_is_refused() -> None:
    """${1x} is not a name."""
    with pytest.raises(ValueError, match="not a variable reference"):
        expand("${1x}", {})
