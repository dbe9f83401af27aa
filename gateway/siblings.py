"""The server processes of one node: the SMTP sessions each holds, and a wake-up to each.

Made by the supervisor before it forks, so every process shares one small
block of memory (a session count per process) and one pipe per process.
The counts spread new connections: a process holding more sessions than a
sibling leaves the next one to it (gateway.smtp.acceptor). With a single
session, one process holds it while the others idle: that process would
spend its core on taking mail in and on delivering it, one after the other.
Delivering is better done by an idle sibling, as Postfix's smtpd leaves it
to a separate smtp process: the busy process stores new mail with its jobs
already leased to the idle sibling and names the message on the sibling's
pipe, and the sibling loads it with a read: no claim, a transaction less per
message. Mail the busy process does not hand over this way (a large message,
a sibling with every worker busy) waits in the queue, and a wake-up byte on
the pipe has the sibling claim it.

A message handed to a sibling that dies before loading it is delivered once
its lease lapses, as is the mail the sibling held.
"""

from __future__ import annotations

import asyncio
import contextlib
import mmap
import os
import struct
from collections.abc import Callable, Sequence

_INT = 4
# A process's delivery lease owner, as its siblings read it: a change count
# (odd while it is being written), its length, and its octets.
_OWNER_HEAD = struct.Struct("=II")
_OWNER_SLOT = 256
# On the pipe: a wake-up to claim is one octet; a message handed over is
# another octet, its queue ID's length, and its queue ID. A write of at most
# PIPE_BUF octets is never split or mixed with another process's.
_CLAIM = 0
_HANDED = 1


class Siblings:
    def __init__(self, processes: int) -> None:
        """Before forking: slots for `processes` processes, none of them this one yet."""
        self._counts = memoryview(mmap.mmap(-1, _INT * processes)).cast("i")
        # Deliveries each process has in hand or has promised a worker to: its
        # workers less the free ones.
        self._in_hand = memoryview(mmap.mmap(-1, _INT * processes)).cast("i")
        self._owners = memoryview(mmap.mmap(-1, _OWNER_SLOT * processes))
        self._pipes = [os.pipe() for _ in range(processes)]
        for read_end, write_end in self._pipes:
            os.set_blocking(read_end, False)
            os.set_blocking(write_end, False)
        self._me = -1

    def become(self, index: int) -> None:
        """In a forked process: slot `index` is this process's (a replacement's
        slot starts again from no sessions)."""
        self._me = index
        self._counts[index] = 0
        self._in_hand[index] = 0
        self.publish_owner("")

    def session_opened(self) -> None:
        self._counts[self._me] += 1

    def session_closed(self) -> None:
        self._counts[self._me] -= 1

    def idle_sibling(self) -> int | None:
        """A sibling holding no session while this process holds some, else None."""
        if self._me < 0 or self._counts[self._me] <= 0:
            return None
        for index, sessions in enumerate(self._counts):
            if index != self._me and sessions <= 0:
                return index
        return None

    def fewer_elsewhere(self) -> bool:
        """Whether a sibling holds fewer sessions than this process (it should take the
        next connection: gateway.smtp.acceptor)."""
        if self._me < 0:
            return False
        mine = self._counts[self._me]
        return any(
            sessions < mine for index, sessions in enumerate(self._counts) if index != self._me
        )

    def publish_owner(self, owner: str) -> None:
        """Name the owner of this process's delivery leases ("": it takes no mail handed over)."""
        data = owner.encode()
        if len(data) > _OWNER_SLOT - _OWNER_HEAD.size:
            raise ValueError(f"lease owner longer than {_OWNER_SLOT - _OWNER_HEAD.size} octets")
        slot = self._owner_slot(self._me)
        (changes, _) = _OWNER_HEAD.unpack_from(slot)
        _OWNER_HEAD.pack_into(slot, 0, changes + 1, 0)
        slot[_OWNER_HEAD.size : _OWNER_HEAD.size + len(data)] = data
        _OWNER_HEAD.pack_into(slot, 0, changes + 2, len(data))

    def owner_of(self, index: int) -> str | None:
        """The lease owner a sibling published; None while none is (or it is being written)."""
        slot = self._owner_slot(index)
        changes, length = _OWNER_HEAD.unpack_from(slot)
        data = bytes(slot[_OWNER_HEAD.size : _OWNER_HEAD.size + length])
        if changes % 2 or _OWNER_HEAD.unpack_from(slot)[0] != changes or not data:
            return None
        return data.decode()

    def _owner_slot(self, index: int) -> memoryview:
        return self._owners[index * _OWNER_SLOT : (index + 1) * _OWNER_SLOT]

    def set_in_hand(self, deliveries: int) -> None:
        self._in_hand[self._me] = deliveries

    def in_hand(self, index: int) -> int:
        return int(self._in_hand[index])

    def wake(self, index: int) -> None:
        # A full pipe holds wake-ups enough already.
        with contextlib.suppress(BlockingIOError):
            os.write(self._pipes[index][1], bytes((_CLAIM,)))

    def hand_over(self, owner: str, queue_id: str) -> bool:
        """Tell the sibling whose leases `owner` names that a message's jobs are
        stored leased to it; False if no sibling is that owner now (it stopped) or
        its pipe is full (it is not reading): the message was not handed over."""
        name = queue_id.encode()
        for index in range(len(self._pipes)):
            if index != self._me and self.owner_of(index) == owner:
                try:
                    os.write(self._pipes[index][1], bytes((_HANDED, len(name))) + name)
                except BlockingIOError:
                    return False
                return True
        return False

    def listen(
        self, woken: Callable[[], None], handed: Callable[[Sequence[str]], None]
    ) -> Callable[[], None]:
        """In this process's running loop, call `woken` when a sibling wakes it to
        claim and `handed` with the queue IDs siblings handed over; returns what
        stops listening."""
        read_end = self._pipes[self._me][0]
        loop = asyncio.get_running_loop()
        unread = bytearray()  # a message's name cut by the end of a read

        def readable() -> None:
            with contextlib.suppress(BlockingIOError):
                unread.extend(os.read(read_end, 4096))
            claim, queue_ids, done = _parse(unread)
            del unread[:done]
            if queue_ids:
                handed(queue_ids)
            if claim:
                woken()

        loop.add_reader(read_end, readable)

        def stop() -> None:
            loop.remove_reader(read_end)

        return stop


def _parse(data: bytearray) -> tuple[bool, list[str], int]:
    """The wake-ups and hand-overs in `data`: whether to claim, the queue IDs, and
    how many octets they took (the rest is a hand-over not yet read whole)."""
    claim = False
    queue_ids: list[str] = []
    at = 0
    while at < len(data):
        if data[at] != _HANDED:
            # A wake-up; anything else is the tail of a name whose head a process
            # that was replaced had read (queue IDs never hold these two octets).
            claim = claim or data[at] == _CLAIM
            at += 1
            continue
        if at + 2 > len(data) or at + 2 + data[at + 1] > len(data):
            break
        end = at + 2 + data[at + 1]
        queue_ids.append(data[at + 2 : end].decode("ascii", "replace"))
        at = end
    return claim, queue_ids, at
