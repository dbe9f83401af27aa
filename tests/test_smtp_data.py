"""DATA read into one buffer: aiosmtpd's message boundaries, unstuffing and limits, over a
real loopback connection, at a bounded cost in memory for a large message."""

from __future__ import annotations

import asyncio
import socket
import threading
import tracemalloc
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.smtp import data
from gateway.smtp.data import LINE_TOO_LONG, TOO_MUCH_DATA, Received, read_data

LINE_LIMIT = 1001  # aiosmtpd's line_length_limit, CRLF included
NEXT_COMMAND = b"QUIT\r\n"


async def _read_over_socket(
    pieces: Sequence[bytes], size_limit: int | None
) -> tuple[Received, bytes, int]:
    """Send `pieces` (each flushed on its own, from a blocking socket in a thread) to a
    loopback server reading with aiosmtpd's reader limit; what read_data made of them,
    what it left unread, and tracemalloc's peak once it returned (0 if not tracing)."""
    done: asyncio.Future[tuple[Received, bytes, int]] = asyncio.get_running_loop().create_future()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received = await read_data(reader, size_limit, LINE_LIMIT)
        peak = tracemalloc.get_traced_memory()[1]
        rest = await reader.readuntil(b"\r\n")
        done.set_result((received, rest, peak))
        writer.close()

    def send(port: int) -> None:
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for piece in pieces:
                client.sendall(piece)
            done_sending.wait(30)

    done_sending = threading.Event()
    server = await asyncio.start_server(serve, "127.0.0.1", 0, limit=LINE_LIMIT)
    port = server.sockets[0].getsockname()[1]
    async with server:
        sender = asyncio.create_task(asyncio.to_thread(send, port))
        try:
            return await asyncio.wait_for(done, 30)
        finally:
            done_sending.set()
            await sender


def read(stream: bytes, size_limit: int | None = None, split_at: int | None = None) -> Received:
    pieces = [stream] if split_at is None else [stream[:split_at], stream[split_at:]]
    received, rest, _ = asyncio.run(_read_over_socket([*pieces, NEXT_COMMAND], size_limit))
    assert rest == NEXT_COMMAND  # nothing after the marker was taken as message
    return received


def test_dot_stuffing_is_undone_and_the_marker_is_found_across_any_split() -> None:
    stream = b".first\r\nSubject: x\r\n\r\n..dot\r\nend\r\n.\r\n"
    for split_at in range(len(stream) + 1):
        assert read(stream, split_at=split_at) == Received(
            b"first\r\nSubject: x\r\n\r\n.dot\r\nend\r\n"
        ), split_at


def test_an_empty_message_and_a_lone_dot_line() -> None:
    assert read(b".\r\n") == Received(b"")
    assert read(b"a\r\n..\r\n.\r\n") == Received(b"a\r\n.\r\n")


def test_a_bare_lf_before_a_dot_does_not_end_the_message() -> None:
    # The SMTP smuggling pattern: it stays inside the message (and is refused later).
    received = read(b"a\n.\r\nMAIL FROM:<x@y>\r\n.\r\n")
    assert received == Received(b"a\n.\r\nMAIL FROM:<x@y>\r\n")


def test_size_limit_counts_as_aiosmtpd_does() -> None:
    stream = b"x" * 98 + b"\r\n" + b".." + b"\r\n"  # 104 octets of lines, stuffed
    assert read(stream + b".\r\n", size_limit=104) == Received(b"x" * 98 + b"\r\n.\r\n")
    assert read(stream + b".\r\n", size_limit=103) == Received(refusal=TOO_MUCH_DATA)
    # Far over the limit: the rest is read and dropped, the session stays in step.
    assert read(b"y" * 500 + b"\r\n" * 20_000 + b".\r\n", size_limit=1000) == Received(
        refusal=TOO_MUCH_DATA
    )


@pytest.mark.parametrize("split_at", [None, 500, 1000])
def test_line_length_limit(split_at: int | None) -> None:
    longest = b"z" * (LINE_LIMIT - 2) + b"\r\n"
    assert read(longest + b".\r\n", split_at=split_at) == Received(longest)
    too_long = b"z" * (LINE_LIMIT - 1) + b"\r\n"
    assert read(too_long + b".\r\n", split_at=split_at) == Received(refusal=LINE_TOO_LONG)


def test_a_large_message_is_held_about_once_while_it_arrives() -> None:
    line = b"The quick brown fox jumps over the lazy dog; lorem ipsum dolor sit amet.\r\n"
    body = line * (8 * 1024 * 1024 // len(line))
    pieces = [body[start : start + 65536] for start in range(0, len(body), 65536)]
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        stream = [*pieces, b".\r\n", NEXT_COMMAND]
        received, rest, peak = asyncio.run(_read_over_socket(stream, None))
        peak -= base
    finally:
        tracemalloc.stop()
    assert rest == NEXT_COMMAND
    assert received.content == body
    # The chunks as they came, then one join of them: about twice the message at the
    # moment of the join, never a list of lines besides.
    assert peak < 2.5 * len(body), peak / len(body)


@pytest.mark.parametrize("split_at", [None, 70_000, 150_001])
def test_one_long_line_among_many_short_ones(split_at: int | None) -> None:
    short = b"QUJD" * 19 + b"\r\n"
    fine = short * 2000 + b"z" * (LINE_LIMIT - 2) + b"\r\n" + short * 2000
    assert read(fine + b".\r\n", split_at=split_at) == Received(fine)
    too_long = short * 2000 + b"z" * (LINE_LIMIT - 1) + b"\r\n" + short * 2000
    assert read(too_long + b".\r\n", split_at=split_at) == Received(refusal=LINE_TOO_LONG)


@given(st.lists(st.integers(0, 40), min_size=1, max_size=60), st.integers(1, 30))
def test_long_lines_are_found_as_by_splitting(lengths: list[int], longest: int) -> None:
    lines = b"\r\n".join(b"x" * length for length in lengths)
    buffer = bytearray(b"\r\n" + lines + b"\r\n")
    expected = max(lengths) > longest
    assert data._has_long_line(buffer, 2, len(buffer) - 2, longest) == expected


@given(
    st.lists(st.integers(0, 40), min_size=1, max_size=60),
    st.integers(1, 30),
    st.lists(st.integers(0, 2_000), max_size=8),
)
def test_long_lines_are_found_in_a_stream_cut_anywhere(
    lengths: list[int], longest: int, cuts: list[int]
) -> None:
    stream = b"".join(b"x" * length + b"\r\n" for length in lengths)
    positions = sorted({cut % (len(stream) + 1) for cut in cuts})
    lines = data._Lines(longest + 2)
    for a, b in zip([0, *positions], [*positions, len(stream)], strict=True):
        lines.check(stream[a:b])  # a CRLF may be cut in two
    assert lines.too_long == (max(lengths) > longest)


# Stuffed lines, lines that nearly end the message, and ordinary ones; no lone ".".
_LINES = st.sampled_from([b"", b"..", b"...x", b"x.", b"\r", b"\n.", b".\r", b"a" * 300])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(_LINES, min_size=1, max_size=40),
    st.integers(1, 12),
    st.lists(st.integers(0, 200_000), max_size=6),
)
def test_the_marker_is_found_however_a_long_stream_arrives(
    lines: list[bytes], copies: int, cuts: list[int]
) -> None:
    """Streams longer than the reader's limit (so read in several chunks), cut anywhere:
    the message ends at the marker, unstuffed, and nothing after it is taken."""
    body = b"\r\n".join(lines * copies) + b"\r\n"
    stream = body + b".\r\n"
    positions = sorted({cut % (len(stream) + 1) for cut in cuts})
    pieces = [stream[a:b] for a, b in zip([0, *positions], [*positions, len(stream)], strict=True)]
    expected = (b"\r\n" + body).replace(b"\r\n.", b"\r\n")[2:]
    received, rest, _ = asyncio.run(_read_over_socket([*pieces, NEXT_COMMAND], None))
    assert rest == NEXT_COMMAND
    assert received == Received(expected)
