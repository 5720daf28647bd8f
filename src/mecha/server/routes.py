"""The API's routes, each declared once: ``create_app`` builds its Starlette routes from
``API_ROUTES`` and ``/openapi.json`` is made from the same entries (``mecha.server.openapi``),
so a route cannot exist without its description.

An entry names the method, the path, the endpoint, a summary (the endpoint's docstring is
the description), who may call it (``Auth``), its parameters, its request body and its
answers: status → ``Answer`` (a model: a TypedDict of ``mecha.server.models`` or the core,
or ``list[...]`` of one). ``Auth.KEY`` routes answer 401 and 403 besides (their endpoint is
wrapped in ``mecha.server.api.requires_key``); list only the other refusals, with ``refusals``.

Adding a route is one entry (the tests check that every route of the built app is in the
document, and that a running server's answers match it)::

    ApiRoute("POST", "/task/{task_id}/retry", actions_api.retry_task, "Retry a task",
             Auth.KEY, params=(TASK_ID,),
             answers={200: Answer("the task, pending again", TaskJson),
                      **refusals({404: "no such task", 409: "the task is not final"})}),

HTML pages (the dashboard) are not part of the API: they are passed to ``create_app`` as
``pages`` (their Routes made with ``include_in_schema=False``) and are not listed here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mecha.event import EventJson, EventState
from mecha.forges.github.webhook import SIGNATURE_HEADER
from mecha.server import actions_api, api, budgets_api, docs, tasks_api, workers_api
from mecha.server.api import MAX_LIMIT
from mecha.server.metrics import metrics
from mecha.server.models import (
    ActionRequestJson,
    BudgetLineJson,
    ErrorJson,
    EventDetailJson,
    HealthJson,
    TaskDetailJson,
    TaskRequestJson,
    WebhookReceivedJson,
    WebhookSeenJson,
    WorkerJson,
    WritesRetryRequestJson,
)
from mecha.server.webhooks import receive_webhook
from mecha.store.records import WriteJson
from mecha.task import TaskJson, TaskState

Endpoint = Callable[[Request], Awaitable[Response]]


class Auth(StrEnum):
    """Who may call a route."""

    #: the API key when the server has one (``Authorization: Bearer`` or ``X-API-Key``);
    #: 401 without it, 403 while the API is closed (beyond loopback without a key)
    KEY = "key"
    #: anyone: the route reveals nothing (the webhooks prove themselves by signature)
    OPEN = "open"
    #: anyone; a caller with the key (or on an open loopback API) is shown more
    OPTIONAL = "optional"


@dataclass(frozen=True, slots=True)
class Param:
    """A path, query or header parameter and its JSON Schema."""

    name: str
    where: Literal["path", "query", "header"]
    description: str
    schema: Mapping[str, Any]
    required: bool = False


@dataclass(frozen=True, slots=True)
class Answer:
    """One status a route answers: a JSON ``model`` (a type), or ``schema`` and ``media``
    for anything else."""

    description: str
    model: Any = None
    media: str = "application/json"
    schema: Mapping[str, Any] | None = None
    #: response header → its description
    headers: Mapping[str, str] = field(default_factory=dict)
    #: other media types the same answer may come in (content negotiation)
    also: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Body:
    """A request body: a JSON ``model``, or ``schema`` for raw bytes taken as they are."""

    description: str
    model: Any = None
    schema: Mapping[str, Any] | None = None
    media: tuple[str, ...] = ("application/json",)
    #: False: the body may be left out
    required: bool = True


@dataclass(frozen=True, slots=True)
class ApiRoute:
    """One route of the API, as the app serves it and the document describes it."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    path: str
    endpoint: Endpoint
    summary: str
    auth: Auth
    answers: Mapping[int, Answer]
    params: tuple[Param, ...] = ()
    body: Body | None = None
    #: groups operations in /docs
    tag: str = ""

    @property
    def description(self) -> str:
        """The endpoint's docstring."""
        return " ".join((self.endpoint.__doc__ or "").split())

    @property
    def operation_id(self) -> str:
        """The endpoint's name (unique across the table)."""
        return self.endpoint.__name__

    def route(self) -> Route:
        """The Starlette route."""
        return Route(self.path, self.endpoint, methods=[self.method], name=self.operation_id)


def refusals(statuses: Mapping[int, str]) -> dict[int, Answer]:
    """``{"error", "hint"}`` answers, by status."""
    return {status: Answer(why, ErrorJson) for status, why in statuses.items()}


def one_of(values: type[Enum]) -> dict[str, Any]:
    """The schema of a text parameter taking the values of ``values``."""
    return {"type": "string", "enum": [member.value for member in values]}


TEXT: Mapping[str, Any] = {"type": "string"}
LIMIT = Param(
    "limit", "query", f"the most to answer (default 100, at most {MAX_LIMIT})",
    {"type": "integer", "minimum": 1, "default": 100},
)  # fmt: skip
STORE_DOWN = {503: "the store cannot be read"}
TASK_ID = Param("task_id", "path", "the task's id, or a unique prefix of 6+ characters", TEXT,
                required=True)  # fmt: skip
EVENT_ID = Param("event_id", "path", "the event's id, or a unique prefix", TEXT, required=True)
WORKER = Param("name", "path", "the worker's name", TEXT, required=True)
WHO = Body("who asks (optional; recorded on the timeline)", ActionRequestJson, required=False)
ACTION_REFUSALS = {400: "the body is not a JSON object of known fields",
                   413: "the body is too large", 503: "the store cannot be used, or this "
                   "server takes no actions"}  # fmt: skip

# fmt: off
API_ROUTES: tuple[ApiRoute, ...] = (
    ApiRoute(
        "GET", "/health", api.health, "Liveness, counts and nodes", Auth.OPTIONAL,
        {200: Answer("the server is up", HealthJson)}, tag="server",
    ),
    ApiRoute(
        "GET", "/metrics", metrics, "Prometheus metrics", Auth.OPEN,
        {200: Answer("Prometheus' text format 0.0.4; OpenMetrics 1.0.0 (ending `# EOF`) when "
                     "the Accept header asks for application/openmetrics-text",
                     media="text/plain", also=("application/openmetrics-text",), schema=TEXT),
         **refusals({403: "the API is closed (beyond loopback without a key)"})},
        tag="server",
    ),
    ApiRoute(
        "POST", "/webhook/{source}", receive_webhook, "Receive a webhook", Auth.OPEN,
        {202: Answer("stored (synced to disk); matching runs afterwards", WebhookReceivedJson),
         200: Answer("a duplicate delivery (nothing written), or a ping", WebhookSeenJson),
         **refusals({
             400: "malformed: not JSON, a key twice, fields of the wrong shape, a bad id",
             401: "the signature or token does not prove the delivery",
             404: "no such source", 413: "the body is larger than 25 MB",
             431: "the headers are larger than 64 KB", 503: "the event could not be stored",
         })},
        params=(
            Param("source", "path", "github, gitlab, or a generic source of config.yml",
                  TEXT, required=True),
            Param(SIGNATURE_HEADER, "header",
                  "GitHub (and generic hmac sources): sha256=<hex HMAC-SHA256 of the raw body>",
                  TEXT),
            Param("X-GitHub-Event", "header", "GitHub: the event's name", TEXT),
            Param("X-GitHub-Delivery", "header", "GitHub: the delivery's id", TEXT),
            Param("X-Gitlab-Token", "header", "GitLab: the webhook's secret token", TEXT),
            Param("X-Gitlab-Event", "header", "GitLab: the event's name", TEXT),
            Param("webhook-id", "header", "GitLab signing token (Standard Webhooks)", TEXT),
            Param("webhook-timestamp", "header", "GitLab signing token: unix seconds", TEXT),
            Param("webhook-signature", "header",
                  "GitLab signing token: v1,<base64 HMAC-SHA256 of id.timestamp.body>", TEXT),
        ),
        body=Body("the forge's payload, checked as raw bytes before it is parsed",
                  schema={"type": "object"},
                  media=("application/json", "application/x-www-form-urlencoded")),
        tag="webhooks",
    ),
    ApiRoute(
        "GET", "/events", api.list_events, "List events", Auth.KEY,
        {200: Answer("events, newest first", list[EventJson]),
         **refusals({400: "state or limit is not valid", **STORE_DOWN})},
        params=(Param("state", "query", "only events in this state", one_of(EventState)), LIMIT),
        tag="events",
    ),
    ApiRoute(
        "GET", "/event/{event_id}", api.show_event, "Show an event", Auth.KEY,
        {200: Answer("the event with its matches, tasks, timeline and writes", EventDetailJson),
         **refusals({404: "no such event", **STORE_DOWN})},
        params=(Param("event_id", "path", "the event's id", TEXT, required=True),),
        tag="events",
    ),
    ApiRoute(
        "POST", "/task", tasks_api.create_task, "Create a task", Auth.KEY,
        {202: Answer("stored and sent on", TaskJson,
                     headers={"Location": "the task's URL (/task/{id})"}),
         **refusals({
             400: "the body is not a task request (it says what is wrong)",
             404: "the named worker is not registered", 409: "the named worker is offline",
             413: "the body is larger than 1 MB",
             503: "no worker is online, or the store cannot be used",
         })},
        body=Body("the task to run", TaskRequestJson), tag="tasks",
    ),
    ApiRoute(
        "GET", "/task/{task_id}", tasks_api.show_task, "Show a task", Auth.KEY,
        {200: Answer("the task with its timeline and writes", TaskDetailJson),
         **refusals({404: "no such task", **STORE_DOWN})},
        params=(TASK_ID,),
        tag="tasks",
    ),
    ApiRoute(
        "GET", "/tasks", tasks_api.list_tasks, "List tasks", Auth.KEY,
        {200: Answer("tasks, newest first", list[TaskJson]),
         **refusals({400: "state or limit is not valid", **STORE_DOWN})},
        params=(Param("state", "query", "only tasks in this state", one_of(TaskState)),
                Param("worker", "query", "only this worker's tasks", TEXT), LIMIT),
        tag="tasks",
    ),
    ApiRoute(
        "GET", "/workers", workers_api.list_workers, "List workers", Auth.KEY,
        {200: Answer("workers by name, definitions masked", list[WorkerJson]),
         **refusals(STORE_DOWN)},
        tag="workers",
    ),
    ApiRoute(
        "GET", "/budgets", budgets_api.list_budgets, "Budget use", Auth.KEY,
        {200: Answer("a line per budget and window", list[BudgetLineJson]),
         **refusals({404: "no budget applies to that worker", **STORE_DOWN})},
        params=(Param("worker", "query", "only this worker's lines", TEXT),),
        tag="workers",
    ),
    ApiRoute(
        "POST", "/task/{task_id}/retry", actions_api.retry_task, "Retry a task", Auth.KEY,
        {200: Answer("the task, pending again with its attempts reset", TaskJson),
         **refusals({404: "no such task", 409: "the task is not failed or cancelled",
                     **ACTION_REFUSALS})},
        params=(TASK_ID,), body=WHO, tag="actions",
    ),
    ApiRoute(
        "POST", "/task/{task_id}/cancel", actions_api.cancel_task, "Cancel a task", Auth.KEY,
        {200: Answer("the task, cancelled (a send under way is abandoned)", TaskJson),
         **refusals({404: "no such task", 409: "the task is not pending or running",
                     **ACTION_REFUSALS})},
        params=(TASK_ID,), body=WHO, tag="actions",
    ),
    ApiRoute(
        "POST", "/event/{event_id}/replay", actions_api.replay_event, "Replay an event",
        Auth.KEY,
        {202: Answer("the new event: a new delivery marked as a replay, matched against "
                     "today's workers", EventJson,
                     headers={"Location": "the new event's URL (/event/{id})"}),
         **refusals({404: "no such event", **ACTION_REFUSALS})},
        params=(EVENT_ID,), body=WHO, tag="actions",
    ),
    ApiRoute(
        "POST", "/event/{event_id}/writes/retry", actions_api.retry_writes,
        "Retry failed writes", Auth.KEY,
        {200: Answer("the writes planned again", list[WriteJson]),
         **refusals({404: "no such event, or no write with that key",
                     409: "no failed or dead-lettered write to retry", **ACTION_REFUSALS})},
        params=(EVENT_ID,),
        body=Body("one write's key, and who asks (both optional)", WritesRetryRequestJson,
                  required=False),
        tag="actions",
    ),
    ApiRoute(
        "POST", "/worker/{name}/start", actions_api.start_worker, "Start a worker", Auth.KEY,
        {200: Answer("the worker after starting", WorkerJson),
         **refusals({404: "no such worker", 409: "this kind or state cannot be started here",
                     502: "its health check or its container failed", **ACTION_REFUSALS})},
        params=(WORKER,), body=WHO, tag="actions",
    ),
    ApiRoute(
        "POST", "/worker/{name}/stop", actions_api.stop_worker, "Stop a worker", Auth.KEY,
        {200: Answer("the worker after stopping", WorkerJson),
         **refusals({404: "no such worker", 409: "this kind or state cannot be stopped here",
                     502: "its container could not be removed", **ACTION_REFUSALS})},
        params=(WORKER,), body=WHO, tag="actions",
    ),
    ApiRoute(
        "GET", "/openapi.json", docs.openapi_json, "This document", Auth.OPEN,
        {200: Answer("OpenAPI 3.1", schema={"type": "object"})}, tag="server",
    ),
    ApiRoute(
        "GET", "/docs", docs.docs_page, "This document, rendered", Auth.OPEN,
        {200: Answer("Swagger UI (vendored; no script from elsewhere)", media="text/html",
                     schema=TEXT)},
        tag="server",
    ),
)
# fmt: on
