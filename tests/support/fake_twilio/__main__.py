"""Run the fake Twilio server: ``python -m tests.support.fake_twilio --port 0 --config '{...}'``.

It prints ``listening on 127.0.0.1:PORT`` once it accepts connections, and runs until
SIGTERM or SIGINT. ``--config`` takes the fields of ``FakeConfig`` as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

from aiohttp import web

from tests.support.fake_twilio.server import FakeConfig, make_app


async def serve(host: str, port: int, config: FakeConfig) -> None:
    # Requests held open on purpose (timeouts after create) must not hold up the exit.
    runner = web.AppRunner(make_app(config), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096)
    await site.start()
    bound = runner.addresses[0][1]
    print(f"listening on {host}:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.fake_twilio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    parser.add_argument("--config", default="{}", help="FakeConfig fields as JSON")
    args = parser.parse_args(argv)
    config = FakeConfig()
    config.update(json.loads(args.config))
    try:
        import uvloop  # installed with uvicorn[standard]; the fake must not be the bottleneck
    except ImportError:
        asyncio.run(serve(args.host, args.port, config))
    else:
        uvloop.run(serve(args.host, args.port, config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
