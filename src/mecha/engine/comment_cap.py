"""``policy.comment.max_per_hour``: a worker writes at most N comments per thread per hour.

A thread is one pull request, merge request or issue (a write's ``target``:
``octo/hello#7``, ``group/app!5``). The count is the write-back ledger's
(``Store.count_writes``): the worker's comment writes on the thread first planned in the
last hour that were made or are to be (planned, calling, done). **Sticky-comment edits
count** like new comments: an edit reaches every webhook (``issue_comment.edited``, a
note's update) as a new comment does, so a loop between two bots through edits is capped as
well. Failed, dead-lettered and dry-run writes do not count (nothing reached the forge),
and a dry run is not checked against the cap either: it is never sent.

A comment over the cap is not planned: the policy's decisions record it as skipped, with
the count and the key (``skipped: comment: …``), and ``mecha_comments_capped_total``
counts it. The write being planned is left out of its own count, so a task sent again
(whose comment is in the ledger already) is not held back by itself. Counting and
planning one thread's comment take turns on this node (``CommentCap.turn``), so two
results settled at once cannot both take the last place; two nodes settling in the same
instant may pass the cap by one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import replace

from mecha.policy.plan import PlannedWrites
from mecha.policy.writes import Write
from mecha.store import Store

#: the window the cap counts over, in seconds
WINDOW = 3600.0


class CommentCap:
    """Checks comment writes against their worker's ``max_per_hour`` before they are planned."""

    def __init__(
        self, *, store: Store, reads: Executor, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._reads = reads
        #: the time the window ends at (a test gives a fake clock)
        self.clock = clock
        self._turns: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def turn(self, writes: Sequence[Write]) -> AsyncIterator[None]:
        """Hold the turn of the thread the comment among ``writes`` goes on (if there is one)
        while it is counted and planned."""
        comment = _comment(writes)
        if comment is None:
            yield
            return
        key = (comment.worker, comment.target)
        lock, users = self._turns.get(key, (asyncio.Lock(), 0))
        self._turns[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._turns[key]
            if users <= 1:
                del self._turns[key]
            else:
                self._turns[key] = (lock, users - 1)

    async def check(self, planned: PlannedWrites, cap: int) -> tuple[PlannedWrites, bool]:
        """``planned`` without its comment when the worker wrote ``cap`` on the thread in the
        last hour (the skip and its reason added), and whether it was dropped."""
        comment = _comment(planned.writes)
        if comment is None:
            return planned, False
        count = functools.partial(
            self._store.count_writes, worker=comment.worker, action="comment",
            target=comment.target, since=self.clock() - WINDOW, exclude=comment.key,
        )  # fmt: skip
        written = await asyncio.get_running_loop().run_in_executor(self._reads, count)
        if written < cap:
            return planned, False
        why = (
            f"comment: not written: {comment.worker} wrote {written} comments on "
            f"{comment.target} in the last hour (policy.comment.max_per_hour {cap}; sticky "
            "edits count)"
        )
        kept = tuple(write for write in planned.writes if write is not comment)
        return replace(planned, writes=kept, skipped=(*planned.skipped, why)), True


def _comment(writes: Sequence[Write]) -> Write | None:
    return next((write for write in writes if write.action == "comment"), None)
