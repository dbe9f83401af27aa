"""gateway.turns: at most so many large messages at once, and the heap trimmed once none
has been in progress for a while (never within a stream of them: each trim walks the heap)."""

from __future__ import annotations

import asyncio

import pytest

from gateway import turns
from gateway.turns import Turns


def test_a_third_waits_for_one_of_two_turns_and_the_heap_is_trimmed_after_the_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trims: list[int] = []
    monkeypatch.setattr(turns.malloc, "trim", lambda: trims.append(1) or True)
    monkeypatch.setattr(turns, "QUIET_SECONDS", 0.05)

    async def scenario() -> list[str]:
        gate = Turns(2)
        order: list[str] = []

        async def large(name: str, hold: asyncio.Event) -> None:
            async with gate:
                order.append(f"{name} in")
                await hold.wait()
            order.append(f"{name} out")

        holds = {name: asyncio.Event() for name in "abc"}
        tasks = [asyncio.create_task(large(name, holds[name])) for name in "abc"]
        await asyncio.sleep(0.01)
        assert order == ["a in", "b in"] and gate.all_taken()
        holds["a"].set()
        await asyncio.sleep(0.01)
        assert order[-2:] == ["a out", "c in"] and not trims  # b and c still in progress
        holds["b"].set()
        holds["c"].set()
        await asyncio.gather(*tasks)
        # A message that starts within the quiet time puts the trim off again.
        async with gate:
            await asyncio.sleep(0.01)
        assert not trims
        await asyncio.sleep(0.1)
        return order

    order = asyncio.run(scenario())
    assert order.count("c in") == 1 and len(trims) == 1
