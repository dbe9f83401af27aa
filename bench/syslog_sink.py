"""A syslog-over-TLS collector that only counts: the far end of the audit
forwarder for `bench/relay.py --forward`, in a process of its own.

    python bench/syslog_sink.py --port 6514 --cert tls/server.crt --key tls/server.key

It reads RFC 5425 frames (length, space, message) and prints how many it
received when it gets SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import ssl
import sys


class Counter:
    def __init__(self) -> None:
        self.frames = 0

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                length = await reader.readuntil(b" ")
                await reader.readexactly(int(length))
                self.frames += 1
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, OSError):
            pass
        finally:
            writer.close()


async def serve(port: int, context: ssl.SSLContext) -> int:
    counter = Counter()
    server = await asyncio.start_server(counter.session, "127.0.0.1", port, ssl=context)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()
    return counter.frames


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    frames = asyncio.run(serve(args.port, context))
    print(f"frames {frames}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
