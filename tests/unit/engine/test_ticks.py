"""Schedules on a fake clock: a ``source: cron`` rule ticks at its times, only for its own
worker, once per time (restarts and a second node included), skips a tick while the last
one runs (``overlap: skip``), and makes one missed tick at start with ``catch_up: true``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mecha.engine.ticks import Fired, Ticker
from mecha.event import EventState
from mecha.store import Store
from mecha.task import Task, TaskState
from mecha.worker.matching import Outcome
from tests.unit.engine.fakes import Worker, eventually, register
from tests.unit.engine.rig import Rig

PROMPT = "triage at {{.tick_time}} ({{.subject}}, by {{.actor}})"


def at(text: str) -> float:
    """A unix time from an ISO text in UTC (in 2027: after the workers are registered)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def cron_worker(name: str, schedule: str = "0 9 * * 1-5", **rule: Any) -> dict[str, Any]:
    return {
        "name": name, "endpoint": "http://127.0.0.1:9/", "rate_limit": {"per_second": 0},
        "events": [{"source": "cron", "schedule": schedule, "tz": "UTC",
                    "subject": "nightly-triage", "prompt": PROMPT, **rule}],
    }  # fmt: skip


def ticker(rig: Rig, now: list[float]) -> Ticker:
    return Ticker(store=rig.store, registry=rig.registry, receive=rig.pipeline.receive,
                  writer=rig.writer, reads=rig.reads, clock=lambda: now[0])  # fmt: skip


def outcomes(fired: list[Fired]) -> list[tuple[str, str, str]]:
    moments = [datetime.fromtimestamp(f.at, UTC).strftime("%a %H:%M") for f in fired]
    return [(f.worker, m, f.outcome) for f, m in zip(fired, moments, strict=True)]


async def tasks_of(store: Store, worker: str, count: int) -> list[Task]:
    async def made() -> list[Task] | None:
        await asyncio.sleep(0)
        found = store.list_tasks(worker=worker)
        return found if len(found) >= count else None

    return await eventually(made, f"{count} tasks of {worker}")


async def settled(store: Store) -> None:
    """Until every task made so far is completed (overlap: skip looks at unfinished ones)."""

    def done() -> bool:
        return all(t.state is TaskState.COMPLETED for t in store.list_tasks(limit=1000))

    await eventually(done, "every task completed")


def test_a_rule_ticks_at_its_times_for_its_own_worker_only(store: Store, tmp_path: Path) -> None:
    # same schedule and subject, two workers: each tick is one worker's
    register(store, cron_worker("nightly"), cron_worker("weekly", "0 9 * * 1"))
    worker = Worker()

    async def main() -> None:
        now = [at("2027-03-05 08:00")]  # a Friday
        async with Rig(store, tmp_path, send=worker.send) as rig:
            clock = ticker(rig, now)
            assert await clock.advance(now[0]) == []  # the first look: no catch-up asked
            assert outcomes(await clock.advance(at("2027-03-05 09:00:30"))) == [
                ("nightly", "Fri 09:00", "sent")
            ]
            await settled(store)
            # over the weekend to Monday: both workers tick once
            fired = await clock.advance(at("2027-03-08 09:00"))
            assert outcomes(fired) == [
                ("nightly", "Mon 09:00", "sent"), ("weekly", "Mon 09:00", "sent")
            ]  # fmt: skip
            # a clock that jumps Tuesday to Friday makes only the last tick it passed
            await settled(store)
            await clock.advance(at("2027-03-09 08:00"))
            fired = await clock.advance(at("2027-03-12 12:00"))
            assert outcomes(fired) == [("nightly", "Fri 09:00", "sent")]
            assert clock.counts["ticks_dropped"] == 3  # Tuesday to Thursday
            nightly = await tasks_of(store, "nightly", 3)
            weekly = await tasks_of(store, "weekly", 1)
            await eventually(lambda: len(worker.sent) == 4, "four tasks sent")
        first = min(nightly, key=lambda t: t.created_at)
        assert first.prompt == "triage at 2027-03-05T09:00:00+00:00 (nightly-triage, by nightly)"
        assert weekly[0].prompt.startswith("triage at 2027-03-08T09:00:00+00:00")
        event = store.get_event(first.event_id)
        assert (event.source, event.type, event.actor) == ("cron", "tick", "nightly")
        assert event.attrs["tick_time"] == "2027-03-05T09:00:00+00:00"
        matches = {m.worker: m.outcome for m in store.list_matches(first.event_id)}
        assert matches == {"nightly": Outcome.MATCHED, "weekly": Outcome.NOT_MATCHED}

    asyncio.run(main())


def test_a_time_ticks_once_across_restarts_and_nodes(store: Store, tmp_path: Path) -> None:
    register(store, cron_worker("nightly", catch_up=True), cron_worker("quiet", "0 10 * * *"))
    worker = Worker()

    async def main() -> None:
        async with Rig(store, tmp_path, send=worker.send) as rig:
            now = [at("2027-03-05 09:00:10")]
            first = ticker(rig, now)
            # catch_up: the last tick due (09:00 today) is made at start; quiet has none
            assert outcomes(await first.advance(now[0])) == [("nightly", "Fri 09:00", "sent")]
            await settled(store)
            # a restart (or a second node) at the same moment: stored already
            again = ticker(rig, now)
            assert outcomes(await again.advance(now[0])) == [("nightly", "Fri 09:00", "duplicate")]
            # two nodes both looking past 10:00: one event for quiet's tick
            await first.advance(at("2027-03-05 09:30"))
            await again.advance(at("2027-03-05 09:30"))
            both = await first.advance(at("2027-03-05 10:00")) + await again.advance(
                at("2027-03-05 10:00:01")
            )
            assert sorted(f.outcome for f in both) == ["duplicate", "sent"]
            await settled(store)
            # down over the weekend: catch_up makes Monday's missed tick once, quiet none
            monday = [at("2027-03-08 11:00")]
            fired = await ticker(rig, monday).advance(monday[0])
            assert outcomes(fired) == [("nightly", "Mon 09:00", "sent")]
            await tasks_of(store, "nightly", 2)
            await tasks_of(store, "quiet", 1)
        ticks = [e for e in store.list_events(limit=100) if e.source == "cron"]
        assert len(ticks) == 3

    asyncio.run(main())


def test_overlap_skip_records_the_skipped_tick_and_queue_makes_it(
    store: Store, tmp_path: Path
) -> None:
    register(store, cron_worker("skipper", "@every 10m"),
             cron_worker("queuer", "@every 10m", overlap="queue"))  # fmt: skip
    worker = Worker(gated=True)  # every task stays running until the gate opens

    async def main() -> None:
        async with Rig(store, tmp_path, send=worker.send) as rig:
            now = [at("2027-03-05 09:00:00")]
            clock = ticker(rig, now)
            await clock.advance(now[0])
            assert len(await clock.advance(at("2027-03-05 09:10"))) == 2
            await eventually(lambda: worker.flying() == 2, "both first ticks running")
            fired = await clock.advance(at("2027-03-05 09:20"))
            assert sorted((f.worker, f.outcome) for f in fired) == [
                ("queuer", "sent"), ("skipper", "skipped")
            ]  # fmt: skip
            assert clock.counts["ticks_skipped"] == 1
            skipped = [e for e in store.list_events(limit=100) if e.state is EventState.SKIPPED]
            [match] = store.list_matches(skipped[0].id)
            assert match.worker == "skipper" and match.outcome == Outcome.HELD
            assert "overlap: skip" in match.reason and "running" in match.reason
            worker.gate.set()
            done = await tasks_of(store, "skipper", 1)
            await eventually(
                lambda: store.get_task(done[0].id).state is TaskState.COMPLETED, "completed"
            )
            # the earlier tick finished: the next one runs
            fired = await clock.advance(at("2027-03-05 09:30"))
            assert ("skipper", "sent") in [(f.worker, f.outcome) for f in fired]
            await tasks_of(store, "skipper", 2)
            await tasks_of(store, "queuer", 3)

    asyncio.run(main())
