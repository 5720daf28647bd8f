"""The composition root: builds the store, sources, forges, engine and app from settings.

Nothing else in Mecha constructs concrete adapters. ``Ingest`` owns everything
``mecha serve`` runs and knows the order to start and stop it in: the store writer
finishes every queued commit before the store closes, and events still ``received`` when
the process died are matched at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import signal
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mecha.app import tracing_otel
from mecha.app.stores import database, listen_for_nodes, open_prune_store, open_store
from mecha.app.worker_control import ServeWorkers
from mecha.app.workers import WorkerRuntime, this_node
from mecha.config.server_file import API_KEY_HINT, DEFAULT_ADDR, ServerConfig, api_key_problem
from mecha.config.settings import Settings
from mecha.config.sources import SourceAuth
from mecha.engine.dispatcher import DispatchSettings
from mecha.engine.leases import DEFAULT_LEASE
from mecha.engine.operator import Operator
from mecha.engine.pipeline import Pipeline
from mecha.engine.registry import WorkerRegistry
from mecha.engine.retention import Pruner
from mecha.engine.ticks import Ticker
from mecha.engine.write_tries import WriteBackSettings
from mecha.errors import MechaError, UsageError
from mecha.event import EventState
from mecha.forges.credentials import web_urls
from mecha.forges.fetch import FetchError
from mecha.forges.sources import SourceHandler, build_sources
from mecha.forges.writer import WriteFailure, Writer
from mecha.known_secrets import KnownSecrets
from mecha.secrets import Secrets
from mecha.store import Store, WorkerRecord
from mecha.store.redacting import RedactingStore

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)
RECOVER_LIMIT = 100_000


@dataclass(frozen=True, kw_only=True)
class Listen:
    """Where to listen and with which key, once flags, config.yml and defaults are merged."""

    host: str
    port: int
    api_key: str
    #: a non-loopback address without a key (and without --insecure): the webhooks and
    #: /health answer, every API route answers 403
    api_closed: bool = False


def resolve_listen(
    *, addr: str | None, api_key: str | None, insecure: bool, config: ServerConfig
) -> Listen:
    """Flag > ``config`` (MECHA_* variables over config.yml, as resolved by
    ``mecha.config.environment``) > default; refuse a weak ``--api-key`` (the config's
    ``api_key`` was checked when it was read). A non-loopback address without a key closes
    the API."""
    text = addr or config.addr or DEFAULT_ADDR
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise UsageError(
            f'address "{text}" is not host:port', hint="e.g. 127.0.0.1:21212 or :21212"
        )
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104 - ":port" means every interface
    if api_key is not None and (problem := api_key_problem(api_key)):
        raise UsageError(f"--api-key {problem}", hint=API_KEY_HINT)
    key = api_key if api_key is not None else config.api_key
    closed = not key and not insecure and not _is_loopback(host)
    keyed = sorted(n for n, s in config.sources.items() if s.auth is SourceAuth.API_KEY)
    if closed and keyed:
        raise UsageError(
            f"refusing to listen on {host} without an API key: source {keyed[0]!r} uses "
            "auth: api_key, so anyone who can reach it could send it events",
            hint="set --api-key (or MECHA_API_KEY, or api_key: in config.yml), listen on "
            "127.0.0.1, or pass --insecure if a proxy in front of Mecha checks callers",
        )
    return Listen(host=host, port=int(port_text), api_key=key, api_closed=closed)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def node_lease(config: ServerConfig) -> float:
    """Seconds a node's claim holds without its heartbeat: ``dispatch.lease`` as resolved
    (MECHA_DISPATCH_LEASE or MECHA_LEASE, else config.yml; ``mecha.config.environment``),
    else 30 s."""
    return float(config.dispatch.get("lease", DEFAULT_LEASE))


def dispatch_settings(config: ServerConfig, *, own_database: bool = False) -> DispatchSettings:
    """The resolved ``dispatch:`` settings (variables over config.yml) over the defaults.
    ``own_database``: one serve owns the database (SQLite, under its serve mark)."""
    given: dict[str, Any] = dict(config.dispatch)
    given["lease"] = node_lease(config)
    given["own_database"] = own_database
    if "concurrency" in given:
        given["concurrency"] = int(given["concurrency"])
    given["max_result"] = config.max_result
    given["budget"] = config.budget
    return DispatchSettings(**given)


def writeback_settings(config: ServerConfig, dispatch: DispatchSettings) -> WriteBackSettings:
    """config.yml ``writeback:`` over the defaults; the ledger is polled as tasks are."""
    given: dict[str, Any] = dict(config.writeback)
    for count in ("attempts", "concurrency"):
        if count in given:
            given[count] = int(given[count])
    return WriteBackSettings(**given, poll_interval=dispatch.poll_interval, lease=dispatch.lease)


class Ingest:
    """Everything `mecha serve` runs for ingestion, in start and stop order."""

    def __init__(
        self,
        *,
        settings: Settings,
        config: ServerConfig,
        secrets: Secrets,
        environ: Mapping[str, str],
        api_key: str,
        api_closed: bool = False,
        store: Store | None = None,
        reload_secrets: Callable[[], Secrets] | None = None,
        known: KnownSecrets | None = None,
    ) -> None:
        #: OpenTelemetry, when the OTEL_* variables ask for it (``app/tracing_otel``)
        self.tracing = tracing_otel.start(environ)
        #: every secret value this serve holds (the log's, the store's and the API's)
        self.known = known if known is not None else KnownSecrets()
        self.known.add({*secrets.values(), api_key})
        inner = store if store is not None else open_store(settings)
        self._inner = inner
        #: stops listening for other nodes' wake-ups (PostgreSQL), once started
        self._stop_listening: Callable[[], None] | None = None
        # nothing from outside is stored before it is redacted
        self.store: Store = (
            inner if isinstance(inner, RedactingStore) and inner.known is self.known
            else RedactingStore(inner, self.known)
        )  # fmt: skip
        self._reload_secrets = reload_secrets
        self.config = config
        self.secrets = secrets
        self.environ = environ
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="mecha-writer")
        self.reads = ThreadPoolExecutor(2, thread_name_prefix="mecha-read")
        # the user's home folder (workspace rules, credential folders), not Mecha's
        user_home = Path(environ.get("HOME") or Path.home())
        self.registry = WorkerRegistry(
            store=self.store, environ=environ, home=user_home, known=self.known
        )
        self.http: httpx.AsyncClient | None = None
        self._identities: asyncio.Task[None] | None = None
        # SQLite: one serve owns the file (its serve mark), and takes back every task found
        # running at start; PostgreSQL: nodes share it and take back only ended leases
        own_database = database(settings).postgres is None
        dispatch = dispatch_settings(config, own_database=own_database)
        self.workers = WorkerRuntime(
            store=self.store, registry=self.registry, writer=self.writer, reads=self.reads,
            settings=dispatch, secrets=secrets, writeback=writeback_settings(config, dispatch),
            db_path=settings.db_path, node=this_node(),
        )  # fmt: skip
        self.pipeline = Pipeline(
            store=self.store, registry=self.registry, writer=self.writer, reads=self.reads,
            tasks=self.workers.dispatcher, events=self.workers.writeback,
        )  # fmt: skip
        #: the operator's actions (the dashboard, the action routes)
        self.operator = Operator(
            store=self.store, pipeline=self.pipeline, reads=self.reads,
            submit=self.workers.dispatcher.submit_threadsafe,
            workers=ServeWorkers(
                store=self.store, registry=self.registry, dispatcher=self.workers.dispatcher,
                adapters=self.workers.adapters, writer=self.writer, reads=self.reads,
                secrets=lambda: self.secrets,
            ),
        )  # fmt: skip
        self.ticker = Ticker(
            store=self.store, registry=self.registry, receive=self.pipeline.receive,
            writer=self.writer, reads=self.reads, local=local_zone(environ),
        )  # fmt: skip
        self.sources: dict[str, SourceHandler] = build_sources(secrets, config, api_key=api_key)
        #: each forge's web address (the dashboard's links to what a write made)
        self.forge_web = web_urls(config, secrets, environ)
        self.api_key = api_key
        self.api_closed = api_closed
        # finished work past config.yml's retention: goes, on the pruner's own connection
        self.pruner = Pruner(
            open_store=functools.partial(open_prune_store, settings), retention=config.retention
        )

    @staticmethod
    def worker_logs(record: WorkerRecord, tail: int) -> str:
        """A managed worker's last ``tail`` log lines (blocking; Docker is imported now)."""
        from mecha.app.docker import worker_logs

        return worker_logs(record, tail)

    async def startup(self) -> None:
        """Start the writers and the forge client; re-match events a crash left behind."""
        import httpx

        from mecha.forges.hydrator import build_hydrator

        self.pipeline.start()
        self.http = httpx.AsyncClient(follow_redirects=False)
        self.pipeline.hydrator = build_hydrator(
            self.http, secrets=self.secrets, config=self.config, environ=self.environ
        )
        self._build_writers()
        await self.workers.start()
        dispatcher = self.workers.dispatcher
        self._stop_listening = listen_for_nodes(
            self._inner, dispatcher.nudge_threadsafe, dispatcher.leases.node.id
        )
        await self.pruner.start()
        pending = self.store.list_events(
            state=EventState.RECEIVED, limit=RECOVER_LIMIT, oldest_first=True
        )
        for event in pending:
            self.pipeline.match_later(event)
        if pending:
            log.info("recovering %d events received before the last stop", len(pending))
        await self.ticker.start()
        if self._reload_secrets is not None:
            with contextlib.suppress(NotImplementedError, RuntimeError):  # not on this platform
                asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.reload)

    def reload(self) -> None:
        """SIGHUP: read secrets.yml again; new webhook secrets and forge tokens apply at once.

        A file with mistakes is refused whole and the old secrets stay in force.
        """
        from mecha.forges.hydrator import build_hydrator

        if self._reload_secrets is None:
            return
        try:
            secrets = self._reload_secrets()
        except MechaError as exc:
            log.error("SIGHUP: secrets.yml not reloaded, the old secrets stay: %s", exc)
            return
        self.known.add(secrets.values())  # before anything could quote them
        self.secrets = secrets
        self.workers.secrets = secrets
        self.workers.reload.secrets_reloaded()  # adapters whose token: changed restart
        # in place: the server reads this very mapping for each delivery
        self.sources.clear()
        self.sources.update(build_sources(secrets, self.config, api_key=self.api_key))
        if self.http is not None:
            self.pipeline.hydrator = build_hydrator(
                self.http, secrets=secrets, config=self.config, environ=self.environ
            )
            self._build_writers()
        log.info("SIGHUP: secrets.yml reloaded (%d webhook sources)", len(self.sources))

    async def shutdown(self) -> None:
        """Finish matching, drain tasks in flight, then every queued commit; close the store."""
        await self.pruner.stop()
        await self.ticker.stop()
        if self._identities is not None:
            self._identities.cancel()
        if self._stop_listening is not None:
            await asyncio.to_thread(self._stop_listening)
        await self.pipeline.finish_matching()
        await self.workers.stop()
        await self.pipeline.close()
        if self.http is not None:
            await self.http.aclose()
        self.writer.shutdown(wait=True)
        self.reads.shutdown(wait=True)
        self.store.close()
        if self.tracing is not None:
            self.tracing.close()  # the last spans exported

    def _build_writers(self) -> None:
        from mecha.forges.write_clients import build_writers

        assert self.http is not None
        writers, previews = build_writers(
            self.http, secrets=self.secrets, config=self.config, environ=self.environ
        )
        self.workers.writeback.set_writers(writers, previews)
        if self._identities is not None:
            self._identities.cancel()
        found = {source: writer for source, writer in writers.items() if writer is not None}
        self._identities = asyncio.get_running_loop().create_task(
            learn_identities(found, self.pipeline.own), name="mecha-identities"
        )
        missing = [name for name, writer in writers.items() if writer is None]
        if missing:
            log.info("no credentials for %s: write-back there is a dry run", ", ".join(missing))


#: seconds between asks of a forge that could not say which account Mecha writes as
IDENTITY_RETRY = 30.0


def local_zone(environ: Mapping[str, str]) -> tzinfo:
    """The server's time zone for schedules without ``tz:``: ``TZ`` if it names one, else
    /etc/localtime, else UTC."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            log.warning("TZ=%s is not a known time zone; schedules use /etc/localtime", name)
    try:
        with open("/etc/localtime", "rb") as file:
            return ZoneInfo.from_file(file, key="localtime")
    except (OSError, ValueError):
        return UTC


async def learn_identities(writers: Mapping[str, Writer], own: dict[str, str]) -> None:
    """Ask each forge which account Mecha writes as, into ``own`` (the pipeline's): events
    that account causes start no worker. A forge that cannot be asked now is asked again
    after IDENTITY_RETRY seconds; until then its events are matched as they come."""
    waiting = dict(writers)
    while waiting:
        for source, writer in list(waiting.items()):
            try:
                login = await writer.identity()
            except (WriteFailure, FetchError) as exc:
                log.warning("%s: cannot ask which account Mecha writes as (%s); its own "
                            "events are not told apart until then", source, exc)  # fmt: skip
                continue
            except Exception:  # a bug: said once, not asked again
                log.exception("%s: asking which account Mecha writes as failed", source)
                login = ""
            del waiting[source]
            if login:
                own[source] = login
                log.info("%s: Mecha writes as %s; what that account does starts no worker",
                         source, login)  # fmt: skip
            else:
                log.warning("%s: the forge did not say which account Mecha writes as", source)
        if waiting:
            await asyncio.sleep(IDENTITY_RETRY)
