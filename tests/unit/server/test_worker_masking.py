"""What `GET /workers` shows of a stored definition: keys masked, tokens kept, text redacted."""

from __future__ import annotations

from mecha.redaction import Redactor
from mecha.server.workers_api import masked

SECRET = "s3cret-from-secrets-yml"


def test_every_api_key_is_masked_and_an_empty_one_stays_empty() -> None:
    definition = {
        "worker": {
            "adapter": {"type": "openai", "api_key": "${OPENAI_KEY}", "token": "openai.default"},
            "docker": {"api_key": ""},
        },
        "withheld": ["adapter.api_key"],
    }
    shown = masked(definition, Redactor())
    assert shown["worker"]["adapter"] == {
        "type": "openai",
        "api_key": "***",
        "token": "openai.default",
    }
    assert shown["worker"]["docker"] == {"api_key": ""}
    assert shown["withheld"] == ["adapter.api_key"]


def test_known_secret_values_and_token_shapes_are_redacted_anywhere() -> None:
    token = "glpat-" + "x1y2z3" * 4
    definition = {"worker": {"docker": {"env": {"A": SECRET, "B": f"x {token}", "C": "plain"}}}}
    env = masked(definition, Redactor([SECRET]))["worker"]["docker"]["env"]
    assert env == {"A": "[REDACTED]", "B": "x [REDACTED]", "C": "plain"}


def test_a_token_reference_is_kept_even_if_it_looks_like_a_value() -> None:
    shown = masked({"token": "claude.default", "n": 3, "flag": True}, Redactor(["claude.default"]))
    assert shown == {"token": "claude.default", "n": 3, "flag": True}
