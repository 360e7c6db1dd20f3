#!/usr/bin/env python3
"""The residents of bench/booking-rush: RESIDENTS phones racing over HTTP for the places of one day
of a hospital department, released to the public at one instant.

Setup (as the hospital's HIS, bearer token QY_HIS_TOKEN): a department, DOCTORS clinicians, and for
each a morning session of SLOTS time slots of PLACES places, released RELEASE_IN seconds from now
(releaseTime to the second, releaseDaysAhead 7: the day a week ahead is what opens).

The rush: every resident (a patient token of their own, minted with the service's JWT secret from
QY_JWT_SECRET exactly as POST /oauth/token would for a patient client bound to them) lists the
department's slots, then waits for the release instant. EAGER % of them cannot wait and send a
booking one to two seconds early (the service must refuse it: slot-not-released, never queue it).
At the instant each resident books the slot they chose (doctors by popularity: doctor k is wanted
in proportion to 1/(k+1), as patients flock to a few famous experts; a random one of that doctor's
slots); on slot-full they list that doctor's slots with a place left and try one, then any doctor's,
until booked or nothing is left (sold out). A 429 (rate limit) ends that resident's attempts.

Prints one line:
  QY_RUSH <residents>|<places>|<booked>|<early refused>|<full refusals>|<other refusals>|<rate limited>|<errors>|
          <requests>|<seconds from the release instant to the last answer>|<requests/s>|<booking p50 ms>|<booking p99 ms>|<all p50 ms>|<all p99 ms>|
          <sold out after s>|<client CPU s>|<department id>|<booked resident ids file>
Exit status 1 on transport errors or unexpected answers (first ones on stderr).

Usage: booking_rush.py --url URL --residents FILE --doctors D --slots S --places P [--eager PCT]
           [--release-in SECONDS] [--connections C] [--tag NAME]
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
from datetime import datetime, timedelta, timezone

import aiohttp

SHANGHAI = timezone(timedelta(hours=8))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(secret: bytes, resident: str, lifetime: int = 7200) -> str:
    """An HS256 token as TokenService.issue makes one (Sources/Access/Tokens.swift)."""
    kid = "hs-" + hashlib.sha256(secret).digest()[:4].hex()
    header = {"alg": "HS256", "typ": "JWT", "kid": kid}
    now = int(time.time())
    claims = {
        "sub": "rush-" + resident[:18], "iss": "qianyun", "aud": "qianyun-api", "iat": now, "exp": now + lifetime,
        "jti": str(uuid.uuid4()), "role": "patient", "res": resident,
        "scope": "facilities.read scheduling.write self.read self.write consultation.write",
    }
    signing = b64url(json.dumps(header, separators=(",", ":")).encode()) + "." + b64url(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret, signing.encode(), hashlib.sha256).digest()
    return signing + "." + b64url(signature)


def percentile(values, p):
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class Stats:
    def __init__(self):
        self.booking_ms = []
        self.all_ms = []
        self.booked = []
        self.early = 0
        self.full = 0
        self.other = {}
        self.limited = 0
        self.errors = []
        self.requests = 0
        self.first = None
        self.last = None
        self.last_booked = None


async def call(session, stats, method, url, token, body=None, booking=False):
    started = time.perf_counter()
    stats.first = stats.first or started
    stats.requests += 1
    try:
        async with session.request(method, url, headers={"Authorization": "Bearer " + token}, json=body) as response:
            text = await response.text()
            status = response.status
    except Exception as error:  # noqa: BLE001 - every transport failure counts
        stats.errors.append(f"{method} {url}: {type(error).__name__}: {error}")
        return None, None
    elapsed = (time.perf_counter() - started) * 1000
    stats.last = time.perf_counter()
    stats.all_ms.append(elapsed)
    if booking:
        stats.booking_ms.append(elapsed)
    try:
        payload = json.loads(text) if text else {}
    except ValueError:
        payload = {}
    return status, payload


def problem(payload):
    return (payload or {}).get("type", "").replace("urn:qianyun:problem:", "")


async def setup(session, args, his):
    """Department, doctors and schedules; returns (department id, release instant)."""
    tag = args.tag
    status, department = await call(session, Stats(), "POST", args.url + "/api/v1/departments", his,
                                     {"code": f"rush-{tag}", "name": f"专家门诊 {tag}"})
    if status != 201:
        sys.exit(f"department: {status} {department}")
    now_local = datetime.now(SHANGHAI)
    release = (now_local + timedelta(seconds=args.release_in)).replace(microsecond=0)
    if release.date() != now_local.date():
        sys.exit("the release instant would fall after midnight in Asia/Shanghai; run again in a minute")
    end_minutes = 8 * 60 + args.slots * 10
    for k in range(args.doctors):
        status, provider = await call(session, Stats(), "POST", args.url + "/api/v1/providers", his,
                                      {"department": f"rush-{tag}", "kind": "clinician", "code": f"{tag}-D{k:03d}",
                                       "name": f"专家{k:03d}", "title": "主任医师"})
        if status != 201:
            sys.exit(f"provider: {status} {provider}")
        status, schedule = await call(session, Stats(), "POST", args.url + "/api/v1/schedules", his, {
            "provider": provider["id"], "weekdays": [1, 2, 3, 4, 5, 6, 7], "session": "morning", "start": "08:00",
            "end": f"{end_minutes // 60:02d}:{end_minutes % 60:02d}", "slotMinutes": 10, "capacity": args.places,
            "feeClass": "expert", "feeCents": 5000, "releaseDaysAhead": 7, "releaseTime": release.strftime("%H:%M:%S")})
        if status != 201:
            sys.exit(f"schedule: {status} {schedule}")
    return department["id"], release.timestamp(), (now_local + timedelta(days=7)).strftime("%Y-%m-%d")


async def resident(session, args, stats, token, resident_id, listing, by_doctor, doctors, weights, release_at, day):
    # Everyone has the listing open on their phone before the instant.
    eager = random.random() * 100 < args.eager
    wait = release_at - time.time() - (random.uniform(1, 2) if eager else 0)
    if wait > 0:
        await asyncio.sleep(wait)
    doctor = random.choices(doctors, weights)[0]
    slot = random.choice(by_doctor[doctor])
    if eager:
        status, payload = await call(session, stats, "POST", args.url + "/api/v1/bookings", token, {"slot": slot}, booking=True)
        if status == 409 and problem(payload) == "slot-not-released":
            stats.early += 1
        elif status is not None:
            stats.errors.append(f"early booking answered {status} {payload}")
        await asyncio.sleep(max(0, release_at - time.time()))
    for attempt in range(12):
        status, payload = await call(session, stats, "POST", args.url + "/api/v1/bookings", token, {"slot": slot}, booking=True)
        if status == 201:
            stats.booked.append(resident_id)
            stats.last_booked = time.perf_counter()
            return
        if status is None:
            return
        code = problem(payload)
        if status == 429:
            stats.limited += 1
            return
        if code == "slot-full":
            stats.full += 1
        elif code == "slot-not-released":
            # The phone's clock ran ahead of the service's: wait a moment, as an app would.
            stats.other[code] = stats.other.get(code, 0) + 1
            await asyncio.sleep(0.2)
            continue
        else:
            stats.other[code or str(status)] = stats.other.get(code or str(status), 0) + 1
            return
        # Full: what is left of this doctor, else of anyone in the department.
        for query in (f"provider={doctor}&date={day}&available=true&limit=20",
                      f"facility={args.facility}&department={listing}&date={day}&available=true&limit=20"):
            status, found = await call(session, stats, "GET", args.url + "/api/v1/slots?" + query, token)
            items = (found or {}).get("items", []) if status == 200 else []
            if items:
                chosen = random.choice(items)
                slot, doctor = chosen["id"], chosen["provider"]
                break
        else:
            return  # sold out


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--residents", required=True)
    parser.add_argument("--doctors", type=int, required=True)
    parser.add_argument("--slots", type=int, required=True)
    parser.add_argument("--places", type=int, required=True)
    parser.add_argument("--facility", default="5201020001")
    parser.add_argument("--eager", type=float, default=5)
    parser.add_argument("--release-in", type=int, default=25)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--tag", default="a")
    parser.add_argument("--booked-file", required=True)
    args = parser.parse_args()
    secret = base64.b64decode(os.environ["QY_JWT_SECRET"])
    his = os.environ["QY_HIS_TOKEN"]
    residents = [line.strip() for line in open(args.residents) if line.strip()]
    tokens = [mint(secret, r) for r in residents]
    cpu_started = time.process_time()
    connector = aiohttp.TCPConnector(limit=args.connections, force_close=False)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        department, release_at, day = await setup(session, args, his)
        stats = Stats()
        status, listing = await call(session, stats, "GET",
                                     f"{args.url}/api/v1/slots?facility={args.facility}&department={department}&date={day}&limit=1000", his)
        slots = listing.get("items", [])
        places = sum(s["capacity"] for s in slots)
        if any(s["released"] for s in slots):
            sys.exit("slots were released before the rush began")
        by_doctor = {}
        for s in slots:
            by_doctor.setdefault(s["provider"], []).append(s["id"])
        doctors = sorted(by_doctor)
        weights = [1 / (k + 1) for k in range(len(doctors))]
        stats = Stats()
        release_mono = time.perf_counter() + (release_at - time.time())
        await asyncio.gather(*[
            resident(session, args, stats, token, rid, department, by_doctor, doctors, weights, release_at, day)
            for rid, token in zip(residents, tokens)])
    cpu = time.process_time() - cpu_started
    rush = (stats.last - release_mono) if stats.last else 0
    span = (stats.last - stats.first) if stats.first and stats.last else 0
    sold_out = (stats.last_booked - release_mono) if stats.last_booked else 0
    with open(args.booked_file, "w") as out:
        out.write("\n".join(stats.booked))
    for error in stats.errors[:5]:
        print("error:", error, file=sys.stderr)
    if stats.other:
        print("other refusals:", stats.other, file=sys.stderr)
    fields = [
        len(residents), places, len(stats.booked), stats.early, stats.full, sum(stats.other.values()), stats.limited,
        len(stats.errors), stats.requests, f"{rush:.2f}", f"{stats.requests / span if span else 0:.0f}",
        f"{percentile(stats.booking_ms, 50):.0f}", f"{percentile(stats.booking_ms, 99):.0f}",
        f"{percentile(stats.all_ms, 50):.0f}", f"{percentile(stats.all_ms, 99):.0f}", f"{sold_out:.2f}", f"{cpu:.1f}",
        department, args.booked_file,
    ]
    print("QY_RUSH " + "|".join(str(f) for f in fields))
    sys.exit(1 if stats.errors else 0)


asyncio.run(main())
