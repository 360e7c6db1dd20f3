#!/usr/bin/env python3
"""Load client of bench/consultation-queue.

Feeders ask for consultations at a steady rate (open loop: each request is sent at its planned
time whatever the service's latency) across the departments, from random residents, 10 % urgent;
WORKERS clinicians loop claim → accept → complete (a clinician whose claim finds the queue empty
waits --idle-ms, 200 by default, and claims again: a desk app would wait for the department's
event stream instead). After DURATION seconds the feeders stop and the clinicians
drain the queues (up to --drain seconds). Tokens are HS256 JWTs signed here with the service's
secret (QIANYUN_JWT_SECRET), as the service's own token endpoint would issue them.

Prints a human summary on stderr and one machine line on stdout:
QY_QUEUE created|claimed|completed|empty|errors|seconds|claims_per_s|claim_p50|claim_p99|wait_p50|wait_p99|
         complete_p50|complete_p99|create_p50|create_p99|lag_p99|left|client_cpu_ms
(latencies in ms; wait is from sending the request to the answer of the claim that took it, on the
client's clock; lag is how late the feeders sent.)
"""

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import random
import sys
import time
import uuid

import aiohttp

CLINICIAN_SCOPES = "consultation.write facilities.read monitoring.read monitoring.write records.read records.write registry.read scheduling.read"
PATIENT_SCOPES = "consultation.write facilities.read scheduling.write self.read self.write"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(secret: bytes, sub: str, role: str, scope: str, fac=None, res=None, lifetime=86400) -> str:
    """An access token as Sources/Access/Tokens.swift issues it."""
    kid = "hs-" + hashlib.sha256(secret).digest()[:4].hex()
    header = {"alg": "HS256", "typ": "JWT", "kid": kid}
    now = int(time.time())
    claims = {"sub": sub, "iss": "qianyun", "aud": "qianyun-api", "iat": now, "exp": now + lifetime,
              "jti": str(uuid.uuid4()), "role": role, "scope": scope}
    if fac:
        claims["fac"] = fac
    if res:
        claims["res"] = res
    signing = b64url(json.dumps(header, separators=(",", ":")).encode()) + "." + \
        b64url(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret, signing.encode(), hashlib.sha256).digest()
    return signing + "." + b64url(signature)


def percentile(values, p):
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[index]


class Stats:
    def __init__(self):
        self.created = []  # consultation ids
        self.asked_at = {}  # id → when the resident's request was sent (client clock)
        self.claimed_at = {}  # id → when the clinician's claim was answered
        self.create_ms = []
        self.lag_ms = []
        self.claim_ms = []
        self.empty_ms = []
        self.complete_ms = []
        self.wait_ms = []
        self.claimed = []
        self.completed = 0
        self.errors = 0
        self.error_samples = []

    def error(self, what, status, body):
        self.errors += 1
        if len(self.error_samples) < 20:
            self.error_samples.append(f"{what}: {status} {body[:300]}")


async def feeder(session, url, stats, residents, departments, rate, duration, secret, started):
    tokens = {}
    total = int(rate * duration)
    tasks = set()

    async def ask(index, planned):
        resident = residents[index % len(residents)]
        token = tokens.get(resident)
        if token is None:
            token = tokens[resident] = mint(secret, "bench-patient-" + resident[:8], "patient", PATIENT_SCOPES, res=resident)
        body = {"department": random.choice(departments), "complaint": f"基准咨询 {index}：咳嗽三天",
                "urgency": "urgent" if random.random() < 0.1 else "routine"}
        sent = time.monotonic()
        stats.lag_ms.append((sent - planned) * 1000)
        try:
            async with session.post(url + "/api/v1/consultations", json=body,
                                    headers={"Authorization": "Bearer " + token}) as response:
                text = await response.text()
                if response.status == 201:
                    cid = json.loads(text)["id"]
                    stats.created.append(cid)
                    stats.asked_at[cid] = sent
                    stats.create_ms.append((time.monotonic() - sent) * 1000)
                else:
                    stats.error("create", response.status, text)
        except Exception as error:  # noqa: BLE001 - counted and reported
            stats.error("create", "exception", repr(error))

    for index in range(total):
        planned = started + index / rate
        delay = planned - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(ask(index, planned))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)


async def clinician(session, url, stats, token, stop, idle):
    headers = {"Authorization": "Bearer " + token}
    while True:
        sent = time.monotonic()
        try:
            async with session.post(url + "/api/v1/consultations/claim", headers=headers) as response:
                text = await response.text()
                elapsed = (time.monotonic() - sent) * 1000
                if response.status == 404:
                    stats.empty_ms.append(elapsed)
                    if stop.is_set():
                        return
                    await asyncio.sleep(idle)
                    continue
                if response.status != 200:
                    stats.error("claim", response.status, text)
                    await asyncio.sleep(idle)
                    continue
                claimed = json.loads(text)
                stats.claim_ms.append(elapsed)
                stats.claimed.append(claimed["id"])
                stats.claimed_at[claimed["id"]] = time.monotonic()
            cid = claimed["id"]
            async with session.post(f"{url}/api/v1/consultations/{cid}/accept", headers=headers) as response:
                text = await response.text()
                if response.status != 200:
                    stats.error("accept", response.status, text)
                    continue
            sent = time.monotonic()
            body = {"summary": "上呼吸道感染可能", "advice": "多饮水，三日不缓解到门诊就诊"}
            async with session.post(f"{url}/api/v1/consultations/{cid}/complete", json=body, headers=headers) as response:
                text = await response.text()
                if response.status != 200:
                    stats.error("complete", response.status, text)
                    continue
                stats.complete_ms.append((time.monotonic() - sent) * 1000)
                stats.completed += 1
        except Exception as error:  # noqa: BLE001 - counted and reported
            stats.error("clinician", "exception", repr(error))
            await asyncio.sleep(idle)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--secret", default=os.environ.get("QIANYUN_JWT_SECRET"), help="base64 JWT secret of the service")
    parser.add_argument("--clinicians", required=True, help="file: one 'client_id facility' a line")
    parser.add_argument("--departments", required=True, help="file: one department id a line")
    parser.add_argument("--residents", required=True, help="file: one resident id a line")
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--drain", type=float, default=30)
    parser.add_argument("--idle-ms", type=float, default=200)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--ids", help="write the ids created and claimed here (one 'kind id' a line)")
    args = parser.parse_args()
    secret = base64.b64decode(args.secret)
    clinicians = [line.split() for line in open(args.clinicians) if line.strip()]
    departments = [line.strip() for line in open(args.departments) if line.strip()]
    residents = [line.strip() for line in open(args.residents) if line.strip()]

    stats = Stats()
    stop = asyncio.Event()
    cpu_before = time.process_time()
    connector = aiohttp.TCPConnector(limit=args.connections, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        workers = [asyncio.create_task(clinician(session, args.url, stats,
                                                 mint(secret, client, "clinician", CLINICIAN_SCOPES, fac=facility), stop,
                                                 args.idle_ms / 1000))
                   for client, facility in clinicians]
        started = time.monotonic()
        await feeder(session, args.url, stats, residents, departments, args.rate, args.duration, secret, started)
        fed = time.monotonic()
        # Drain: the clinicians keep claiming until every request created was claimed (or time runs out).
        drain_deadline = fed + args.drain
        while len(stats.claimed) < len(stats.created) and time.monotonic() < drain_deadline:
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait(workers, timeout=10)
        for worker in workers:
            worker.cancel()
        finished = time.monotonic()
    cpu_ms = (time.process_time() - cpu_before) * 1000
    # The resident's wait, end to end: from sending the request to the answer of the claim that took it.
    stats.wait_ms = [(stats.claimed_at[cid] - asked) * 1000 for cid, asked in stats.asked_at.items() if cid in stats.claimed_at]

    seconds = finished - started
    created, claimed = len(stats.created), len(stats.claimed)
    left = len(set(stats.created) - set(stats.claimed))
    if args.ids:
        with open(args.ids, "w") as out:
            for cid in stats.created:
                out.write(f"created {cid}\n")
            for cid in stats.claimed:
                out.write(f"claimed {cid}\n")
    fields = [created, claimed, stats.completed, len(stats.empty_ms), stats.errors, f"{seconds:.1f}",
              f"{claimed / seconds:.1f}",
              f"{percentile(stats.claim_ms, 50):.1f}", f"{percentile(stats.claim_ms, 99):.1f}",
              f"{percentile(stats.wait_ms, 50):.0f}", f"{percentile(stats.wait_ms, 99):.0f}",
              f"{percentile(stats.complete_ms, 50):.1f}", f"{percentile(stats.complete_ms, 99):.1f}",
              f"{percentile(stats.create_ms, 50):.1f}", f"{percentile(stats.create_ms, 99):.1f}",
              f"{percentile(stats.lag_ms, 99):.1f}", left, f"{cpu_ms:.0f}"]
    print("QY_QUEUE " + "|".join(str(field) for field in fields))
    print(f"created {created}, claimed {claimed}, completed {stats.completed}, empty claims {len(stats.empty_ms)}, "
          f"errors {stats.errors}, unclaimed {left}, in {seconds:.1f} s", file=sys.stderr)
    for sample in stats.error_samples:
        print("  error: " + sample, file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
