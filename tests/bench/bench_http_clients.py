"""httpx against aiohttp as the Twilio provider's transport: CPU per message (#16).

The same ``TwilioProvider`` (the same form fields, the same error handling) sends N SMS to
a Twilio-compatible server on loopback (``tests/support/fake_twilio``, in a process of its
own, answering in 100 ms), once over each transport, with the same number in flight. The
figure that matters is this process's CPU time per message: in a disaster the dispatcher is
bound by CPU, not by Twilio. A bare aiohttp loop posting the same bytes is the floor.

    .venv/bin/python -m tests.bench.bench_http_clients [--messages 3000] [--in-flight 200]

The server's own CPU is reported too, to show it is not what limits the run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import resource
import time
from urllib.parse import urlencode

import aiohttp

from service.telephony.twilio_provider import TwilioProvider
from tests.support.fake_twilio import FakeConfig, FakeTwilioProcess


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def through_provider(url: str, client: str, account: str, token: str, n: int, c: int):
    provider = TwilioProvider(
        account_sid=account,
        auth_token=token,
        from_number="+815012345678",
        api_url=url,
        http_client_name=client,  # type: ignore[arg-type]
        connections=c + 16,
    )
    gate = asyncio.Semaphore(c)

    async def one(i: int) -> None:
        async with gate:
            await provider.send_sms(
                to=f"+8190{i:08d}", body="お元気ですか? 1: 元気", status_callback="https://x/s?a=1"
            )

    await one(0)  # connect, warm up
    started, cpu0 = time.perf_counter(), cpu()
    await asyncio.gather(*(one(i) for i in range(1, n + 1)))
    wall, used = time.perf_counter() - started, cpu() - cpu0
    await provider.aclose()
    return wall, used


async def bare_aiohttp(url: str, account: str, token: str, n: int, c: int):
    endpoint = f"{url}/2010-04-01/Accounts/{account}/Messages.json"
    auth = "Basic " + base64.b64encode(f"{account}:{token}".encode()).decode()
    headers = {"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"}
    gate = asyncio.Semaphore(c)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c + 16)) as session:

        async def one(i: int) -> None:
            body = urlencode(
                {"To": f"+8190{i:08d}", "Body": "お元気ですか? 1: 元気", "From": "+815012345678"}
            ).encode()
            async with gate, session.post(endpoint, data=body, headers=headers) as response:
                await response.read()

        await one(0)
        started, cpu0 = time.perf_counter(), cpu()
        await asyncio.gather(*(one(i) for i in range(1, n + 1)))
        return time.perf_counter() - started, cpu() - cpu0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--in-flight", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    args = parser.parse_args()
    config = FakeConfig(latency_ms=args.latency_ms, deliver_after_ms=0)
    with FakeTwilioProcess(config) as fake:
        account, token = config.account_sid, config.auth_token
        rows = []
        for name in ("httpx", "aiohttp", "bare aiohttp"):
            server0 = fake.cpu_seconds()
            if name == "bare aiohttp":
                wall, used = asyncio.run(
                    bare_aiohttp(fake.url, account, token, args.messages, args.in_flight)
                )
            else:
                wall, used = asyncio.run(
                    through_provider(fake.url, name, account, token, args.messages, args.in_flight)
                )
            server = fake.cpu_seconds() - server0
            rows.append((name, args.messages / wall, 1000 * used / args.messages, server / wall))
            fake.reset()
    print(
        f"{args.messages} SMS, {args.in_flight} in flight, server answers in {args.latency_ms} ms"
    )
    print(f"{'client':<14}{'msg/s':>9}{'CPU ms/msg':>12}{'server CPU':>12}")
    for name, rate, per, server in rows:
        print(f"{name:<14}{rate:>9.0f}{per:>12.3f}{server:>11.0%}")


if __name__ == "__main__":
    main()
