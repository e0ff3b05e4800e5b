#!/usr/bin/python3
"""Truv's quickstart strategy run as a batch, the anchor of the "Under Truv's
limits" benchmark: each case refreshes its order (POST /v1/orders/{id}/),
then reads the refresh order every 2 s until its connections have finished
(Truv's quickstart polls a refresh every 2 s until its status is final). A
batch needs two things the quickstart leaves out, kept as simple as can be:
at most CONCURRENCY cases at a time, and every request paced to the rate
limit (one start every 60 / RATE s, first come first served), so that it
meets no 429.

Time is compressed like the sandbox's (--time-scale K): pauses are 2 / K s
and the rate is RATE * K per minute of the wall clock; the times printed are
virtual seconds (wall * K).

    /usr/bin/python3 bench/quickstart.py BASE_URL CASES_CSV K RATE CONCURRENCY TIMES_OUT [CA_FILE]

Prints one JSON line: cases, routed, requests, throttled (429s, each
retried after 2 virtual s), virtual_s, wall_s, cpu_s; writes the virtual
time of each routed case, one a line, to TIMES_OUT.
"""
import asyncio
import csv
import json
import os
import resource
import ssl
import sys
import time

import aiohttp

KIND = {"income": "employers", "employment": "employers", "insurance": "employers",
        "assets": "financial_accounts", "transactions": "financial_accounts"}
UNFINISHED = {"pending", "sent"}
POLL_S = 2.0


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Pacer:
    """One request start every `interval` seconds, in order of asking."""

    def __init__(self, interval):
        self.interval = interval
        self.next = time.monotonic()

    async def slot(self):
        now = time.monotonic()
        at = max(now, self.next)
        self.next = at + self.interval
        if at > now:
            await asyncio.sleep(at - now)


async def call(session, pacer, stats, method, url, k, body=None):
    while True:
        await pacer.slot()
        async with session.request(method, url, json=body) as r:
            stats["requests"] += 1
            if r.status == 429:
                stats["throttled"] += 1
                await r.read()
                await asyncio.sleep(POLL_S / k)
                continue
            r.raise_for_status()
            return await r.json()


async def case_flow(session, pacer, stats, base, case, k, sem, t0, times):
    async with sem:
        kind = KIND[case["product"]]
        body = {"products": [case["product"]]}
        ids = [i for i in (case.get(kind) or "").split(";") if i]
        if ids:
            body[kind] = [{"id": i} for i in ids]
        fresh = await call(session, pacer, stats, "POST", f"{base}orders/{case['order_id']}/", k,
                           body)
        while True:
            conns = (fresh.get("employers") or []) + (fresh.get("financial_accounts") or [])
            if conns and not any(c.get("status") in UNFINISHED for c in conns):
                break
            await asyncio.sleep(POLL_S / k)
            fresh = await call(session, pacer, stats, "GET", f"{base}orders/{fresh['id']}/", k)
        stats["routed"] += 1
        times.append((time.monotonic() - t0) * k)


async def main():
    base, cases_path, k = sys.argv[1], sys.argv[2], float(sys.argv[3])
    rate, concurrency, times_out = float(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
    ca_file = sys.argv[7] if len(sys.argv) > 7 else None
    with open(cases_path, newline="") as f:
        cases = list(csv.DictReader(f))
    headers = {"X-Access-Client-Id": os.environ["TRUV_CLIENT_ID"],
               "X-Access-Secret": os.environ["TRUV_SECRET"], "Accept": "application/json"}
    stats = {"requests": 0, "throttled": 0, "routed": 0}
    times = []
    pacer = Pacer(60.0 / (rate * k))
    sem = asyncio.Semaphore(concurrency)
    ssl_ctx = ssl.create_default_context(cafile=ca_file) if ca_file else None
    connector = aiohttp.TCPConnector(limit=concurrency, ssl=ssl_ctx)
    c0, t0 = cpu(), time.monotonic()
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(headers=headers, connector=connector,
                                     timeout=timeout) as session:
        await asyncio.gather(*(case_flow(session, pacer, stats, base, c, k, sem, t0, times)
                               for c in cases))
    wall = time.monotonic() - t0
    with open(times_out, "w") as f:
        f.writelines(f"{t:.3f}\n" for t in times)
    print(json.dumps({"cases": len(cases), "routed": stats["routed"],
                      "requests": stats["requests"], "throttled": stats["throttled"],
                      "virtual_s": wall * k, "wall_s": wall, "cpu_s": cpu() - c0}))


asyncio.run(main())
