#!/usr/bin/python3
"""The renewal workflow written in Python with aiohttp, as the anchor for the
client CPU per refresh: the same steps lua-truv's renewal takes for a case
whose connections are active (read the original order, journal the intent,
refresh, journal the answer, poll the refresh order until its connections
finish, journal the route), against the same sandbox, at the same
concurrency.

    /usr/bin/python3 bench/renewal_aiohttp.py BASE_URL CASES_CSV CONCURRENCY JOURNAL [CA_FILE]

Over https (a BASE_URL of the sandbox's --tls), the peer is verified against
CA_FILE, as lua-truv's ca_file does.

Prints one JSON line: cases, requests, cpu_s (this process, user + system),
wall_s.
"""
import asyncio
import csv
import json
import os
import resource
import sqlite3
import ssl
import sys
import time

import aiohttp

KIND = {"income": "employers", "employment": "employers", "insurance": "employers",
        "assets": "financial_accounts", "transactions": "financial_accounts"}
UNFINISHED = {"pending", "sent"}


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Journal:
    def __init__(self, path):
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS cases (case_id TEXT PRIMARY KEY, state TEXT,"
                        " refresh_order_id TEXT, route TEXT, updated_at REAL)")

    def put(self, case_id, state, refresh_order_id=None, route=None):
        self.db.execute("INSERT INTO cases VALUES (?,?,?,?,?) ON CONFLICT(case_id) DO UPDATE SET "
                        "state=excluded.state, refresh_order_id=coalesce(excluded.refresh_order_id,"
                        " refresh_order_id), route=excluded.route, updated_at=excluded.updated_at",
                        (case_id, state, refresh_order_id, route, time.time()))


async def case_flow(session, base, case, journal, sem, counter):
    async with sem:
        async with session.get(f"{base}orders/{case['order_id']}/") as r:
            original = await r.json()
        counter[0] += 1
        kind = KIND[case["product"]]
        body = {"products": [case["product"]]}
        ids = [i for i in (case.get(kind) or "").split(";") if i]
        if ids:
            body[kind] = [{"id": i} for i in ids]
        journal.put(case["case_id"], "sending")
        async with session.post(f"{base}orders/{original['id']}/", json=body) as r:
            fresh = await r.json()
        counter[0] += 1
        journal.put(case["case_id"], "sent", fresh["id"])
        while True:
            conns = (fresh.get("employers") or []) + (fresh.get("financial_accounts") or [])
            if conns and not any(c.get("status") in UNFINISHED for c in conns):
                break
            await asyncio.sleep(0.01)
            async with session.get(f"{base}orders/{fresh['id']}/") as r:
                fresh = await r.json()
            counter[0] += 1
        route = "done" if all(c.get("status") == "completed" for c in conns) else "other"
        journal.put(case["case_id"], "routed", route=route)


async def main():
    base, cases_path, concurrency, journal_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    ca_file = sys.argv[5] if len(sys.argv) > 5 else None
    with open(cases_path, newline="") as f:
        cases = list(csv.DictReader(f))
    if os.path.exists(journal_path):
        os.remove(journal_path)
    journal = Journal(journal_path)
    headers = {"X-Access-Client-Id": os.environ["TRUV_CLIENT_ID"],
               "X-Access-Secret": os.environ["TRUV_SECRET"], "Accept": "application/json"}
    counter = [0]
    sem = asyncio.Semaphore(concurrency)
    c0, t0 = cpu(), time.monotonic()
    ssl_ctx = ssl.create_default_context(cafile=ca_file) if ca_file else None
    connector = aiohttp.TCPConnector(limit=concurrency, ssl=ssl_ctx)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        await asyncio.gather(*(case_flow(session, base, c, journal, sem, counter) for c in cases))
    print(json.dumps({"cases": len(cases), "requests": counter[0], "cpu_s": cpu() - c0,
                      "wall_s": time.monotonic() - t0}))


asyncio.run(main())
