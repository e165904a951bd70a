"""A server's stop ends its background tasks even when one loses a cancellation: on
Python 3.11 ``asyncio.wait_for`` can swallow a cancel that lands as its inner call ends,
and a watcher loop around it then runs on, so a stop that cancels once waits forever."""

from __future__ import annotations

import asyncio

from driftloop.serving._server import stopped


def test_a_task_that_swallows_its_first_cancellation_is_still_stopped() -> None:
    swallowed: list[int] = []

    async def stubborn_watcher() -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if not swallowed:  # as a lost cancel would: the loop goes on
                    swallowed.append(1)
                    continue
                raise

    async def main() -> bool:
        task = asyncio.get_running_loop().create_task(stubborn_watcher())
        await asyncio.sleep(0)
        await asyncio.wait_for(stopped(task), timeout=60)  # a hang fails, not blocks
        return task.cancelled()

    assert asyncio.run(main())
    assert swallowed == [1]


def test_stopping_a_finished_task_returns() -> None:
    async def main() -> None:
        task = asyncio.get_running_loop().create_task(asyncio.sleep(0))
        await task
        await stopped(task)

    asyncio.run(main())
