"""Deadlines that hold even for work that does not end when it is cancelled.

``asyncio.wait_for`` and ``asyncio.timeout`` cancel the work at the deadline and then wait for it
to finish, however long that takes: a ``finally`` that awaits a hung browser or server keeps
them waiting for ever, and ``asyncio.run`` does the same with every task still pending at the
end. A benchmark must end in bounded time, so here the work gets a grace period to unwind after
the cancellation and is then left behind (and reported), never waited for again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

GRACE_S = 10.0
"""How long cancelled work may take to unwind before it is left behind."""


class Overrun(Exception):
    """Work did not finish within its deadline (it was cancelled, and left behind if it did not
    unwind within the grace period). Not a ``TimeoutError``, so that callers can tell it from
    the timeouts the work raises itself."""


def _forget(task: asyncio.Future[Any]) -> None:
    """Read a left-behind task's outcome when it ends, so asyncio does not log it as lost."""
    if not task.cancelled():
        task.exception()


async def bounded(work: Awaitable[T], timeout_s: float, grace_s: float = GRACE_S,
                  what: str = "work") -> T:
    """``await work``, for at most ``timeout_s``; then :class:`Overrun` after cancelling it and
    giving it at most ``grace_s`` to unwind. If this call is cancelled, so is the work."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.wait({task}, timeout=max(0.0, timeout_s))
    except asyncio.CancelledError:
        task.cancel()
        task.add_done_callback(_forget)
        raise
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.wait({task}, timeout=grace_s)
    task.add_done_callback(_forget)
    unwound = "" if task.done() else f"; it did not unwind within {grace_s:g} s and was left"
    raise Overrun(f"{what} did not finish within {timeout_s:g} s{unwound}")


def run(main: Coroutine[Any, Any, T], grace_s: float = GRACE_S) -> T:
    """Like ``asyncio.run(main)``, except that tasks still pending at the end get ``grace_s`` to
    end after cancellation and are then abandoned with the loop, instead of waited for."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(main)
    finally:
        try:
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.wait(pending, timeout=grace_s))
            for cleanup in (loop.shutdown_asyncgens(), loop.shutdown_default_executor()):
                step = loop.create_task(cleanup)
                loop.run_until_complete(asyncio.wait({step}, timeout=grace_s))
                if not step.done():
                    step.cancel()
                    step.add_done_callback(_forget)
            for task in pending:
                if task.done():
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        task.result()
        finally:
            asyncio.set_event_loop(None)
            loop.close()
