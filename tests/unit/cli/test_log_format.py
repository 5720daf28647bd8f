"""How log lines look (``mecha.cli.log_format``), through the handler ``start_logging``
makes: text with a local timestamp, or one JSON object per line (RFC 3339 UTC ``ts``,
the event, task and worker the line is about, a traceback as ``exc``), every message and
traceback through the redactor; per-request lines (httpx, the access log's probes) at
DEBUG only; a MECHA_LOG_FORMAT that names no format refused by name."""

from __future__ import annotations

import asyncio
import calendar
import io
import json
import logging
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from mecha.cli import main
from mecha.cli.context import AppContext
from mecha.cli.log_format import log_format
from mecha.engine import log_context
from mecha.errors import ConfigError

SECRET = "hook-secret-value-0042"
ACCESS = '%s - "%s %s HTTP/%s" %d'  # uvicorn's access line


@pytest.fixture
def logged(tmp_path: Path) -> Iterator[tuple[AppContext, io.StringIO]]:
    """Logging started as the CLI starts it (JSON), at INFO; a secret value known."""
    app, stream = _started(tmp_path, {"MECHA_LOG_FORMAT": "json", "MECHA_LOG_LEVEL": "INFO"})
    try:
        yield app, stream
    finally:
        app.close()


def _started(tmp_path: Path, environ: Mapping[str, str]) -> tuple[AppContext, io.StringIO]:
    app = AppContext({"HOME": str(tmp_path), "MECHA_HOME": str(tmp_path / "m"), **environ})
    app.known.add({SECRET})
    stream = io.StringIO()
    app.start_logging(stream)
    return app, stream


def _lines(stream: io.StringIO) -> list[dict[str, str]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_json_line_has_its_fields_and_masks_secrets(
    logged: tuple[AppContext, io.StringIO],
) -> None:
    _, stream = logged
    before = time.time()
    logging.getLogger("mecha.test").warning("sent %s with ghp_abcdefghij123", SECRET)
    after = time.time()
    (line,) = _lines(stream)
    assert list(line) == ["ts", "level", "logger", "message"]  # nothing about no event
    assert (line["level"], line["logger"]) == ("WARNING", "mecha.test")
    assert line["message"] == "sent [REDACTED] with [REDACTED]"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["ts"])
    at = calendar.timegm(time.strptime(line["ts"][:19], "%Y-%m-%dT%H:%M:%S"))  # read as UTC
    assert before - 0.001 <= at + int(line["ts"][20:23]) / 1000 <= after


def test_a_traceback_is_a_field_of_its_line_and_masked(
    logged: tuple[AppContext, io.StringIO],
) -> None:
    _, stream = logged
    try:
        raise RuntimeError(f"the forge said {SECRET}")
    except RuntimeError:
        logging.getLogger("mecha.test").exception("write w-1: unexpected failure")
    (line,) = _lines(stream)
    assert line["message"] == "write w-1: unexpected failure"
    assert line["exc"].startswith("Traceback (most recent call last):")
    assert line["exc"].endswith("RuntimeError: the forge said [REDACTED]")
    assert SECRET not in stream.getvalue()


def test_lines_carry_the_event_task_and_worker_where_they_were_written(
    logged: tuple[AppContext, io.StringIO],
) -> None:
    _, stream = logged
    log = logging.getLogger("mecha.test")

    async def one_task(task_id: str) -> None:  # as the dispatcher runs each send
        log_context.for_task(task_id, f"worker-{task_id}", f"event-{task_id}")
        await asyncio.sleep(0)  # the other task runs meanwhile
        log.info("sent")

    async def both() -> None:
        await asyncio.gather(one_task("t1"), one_task("t2"))
        log.info("between tasks")  # this task set nothing
        log.info("told", extra={"event_id": "e9", "worker": "w9"})

    asyncio.run(both())
    lines = _lines(stream)
    about = [(x["message"], x.get("event_id"), x.get("task_id"), x.get("worker")) for x in lines]
    assert about == [
        ("sent", "event-t1", "t1", "worker-t1"),
        ("sent", "event-t2", "t2", "worker-t2"),
        ("between tasks", None, None, None),
        ("told", "e9", None, "w9"),
    ]  # fmt: skip


def test_probes_are_debug_lines_other_requests_info(tmp_path: Path) -> None:
    requests = [("GET", "/health"), ("GET", "/metrics"), ("POST", "/webhook/github"),
                ("GET", "/ui/events"), ("HEAD", "/health?x=1"), ("POST", "/health")]  # fmt: skip
    shown: dict[str, list[tuple[str, str]]] = {}
    for level in ("INFO", "DEBUG"):
        app, stream = _started(tmp_path, {"MECHA_LOG_FORMAT": "json", "MECHA_LOG_LEVEL": level})
        try:
            for method, path in requests:
                logging.getLogger("uvicorn.access").info(
                    ACCESS, "127.0.0.1:5000", method, path, "1.1", 200
                )
            logging.getLogger("httpx").info("HTTP Request: GET http://127.0.0.1:9/health")
        finally:
            app.close()
        shown[level] = [(x["level"], [*x["message"].split('"'), x["message"]][1])
                        for x in _lines(stream)]  # fmt: skip
    assert shown["INFO"] == [
        ("INFO", "POST /webhook/github HTTP/1.1"), ("INFO", "GET /ui/events HTTP/1.1"),
        ("INFO", "POST /health HTTP/1.1"),
    ]  # fmt: skip
    assert shown["DEBUG"] == [
        ("DEBUG", "GET /health HTTP/1.1"), ("DEBUG", "GET /metrics HTTP/1.1"),
        ("INFO", "POST /webhook/github HTTP/1.1"), ("INFO", "GET /ui/events HTTP/1.1"),
        ("DEBUG", "HEAD /health?x=1 HTTP/1.1"), ("INFO", "POST /health HTTP/1.1"),
        ("DEBUG", "HTTP Request: GET http://127.0.0.1:9/health"),
    ]  # fmt: skip


def test_text_lines_keep_their_local_timestamp(tmp_path: Path) -> None:
    app, stream = _started(tmp_path, {"MECHA_LOG_LEVEL": "INFO"})
    before = time.time()
    try:
        logging.getLogger("mecha.test").info("about %s", SECRET)
    finally:
        after = time.time()
        app.close()
    line = stream.getvalue()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} INFO mecha.test: about \[REDACTED\]\n", line
    )
    at = time.mktime(time.strptime(line[:19], "%Y-%m-%dT%H:%M:%S"))  # read as local time
    assert before - 0.001 <= at + int(line[20:23]) / 1000 <= after


@pytest.mark.parametrize("value", ["", "text", "TEXT", " json ", "Json"])
def test_the_formats(value: str) -> None:
    assert log_format({"MECHA_LOG_FORMAT": value}) in ("text", "json")
    assert log_format({"MECHA_LOG_FORMAT": value}) == (value.strip().lower() or "text")
    assert log_format({}) == "text"


def test_a_format_that_is_none_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as refused:
        log_format({"MECHA_LOG_FORMAT": "logfmt"})
    assert str(refused.value) == (
        "MECHA_LOG_FORMAT='logfmt' is not a log format\n"
        "  hint: set MECHA_LOG_FORMAT to one of: text, json (or unset it: text)"
    )
    monkeypatch.setenv("MECHA_HOME", str(tmp_path))
    monkeypatch.setenv("MECHA_LOG_FORMAT", "logfmt")
    with pytest.raises(SystemExit) as ended:
        main(["worker", "ls"])
    assert ended.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: MECHA_LOG_FORMAT='logfmt' is not a log format\n"), err
    assert "Traceback" not in err
