"""A worker file may not read Mecha's own secrets from the environment: ${MECHA_DATABASE_URL}
(the database URL with its password) is refused where it is written, and its value is
never part of the message."""

from __future__ import annotations

import pytest

from mecha.errors import WorkerFileError
from mecha.worker.parser import parse_worker
from mecha.yaml_doc import load_yaml

URL = "postgresql://mecha:hunter2-db-pass@db:5432/mecha"
ENVIRON = {"MECHA_DATABASE_URL": URL, "OTHER": "fine"}


def worker(env_value: str) -> str:
    return (
        "name: w\ndocker:\n  image: mecha/worker\n  env:\n"
        f"    DB: '{env_value}'\n"
        "events:\n  - source: github\n    on: [pull_request.opened]\n    prompt: hi\n"
    )


@pytest.mark.parametrize(
    "value",
    ["${MECHA_DATABASE_URL}", "x-${MECHA_DATABASE_URL:-none}", "${OTHER}${MECHA_DATABASE_URL}"],
)
def test_the_database_url_is_refused_in_a_worker_file(value: str) -> None:
    with pytest.raises(WorkerFileError) as caught:
        parse_worker(load_yaml(worker(value), file="w.yml"), environ=ENVIRON)
    [problem] = caught.value.problems
    assert "MECHA_DATABASE_URL" in problem.message
    assert "database password" in problem.message
    assert str(problem.location).startswith("w.yml:5:")
    assert "hunter2" not in str(caught.value)


def test_other_variables_still_expand() -> None:
    parsed = parse_worker(load_yaml(worker("${OTHER}"), file="w.yml"), environ=ENVIRON)
    assert parsed.spec.docker is not None
    assert parsed.spec.docker.env["DB"] == "fine"
