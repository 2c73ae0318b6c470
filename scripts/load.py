#!/usr/bin/env python3
"""A bounded load test of `make dev`, on 127.0.0.1 only.

  scripts/load.py [--rate 10] [--seconds 60] [--concurrency 4]

Brings `make dev` up on free ports with its own emulator, `--concurrency`
instances per function (nuvem-local's flag) and signups unlimited per
address, onboards an account with two webhook endpoints (a receiver on
127.0.0.1) and a WhatsApp store whose number is the fake Graph API's. Then,
open loop, `--rate` requests a second for `--seconds`, in this mix:

  signup 10 %        POST /v1/signup, a new company each time
  read 50 %          GET /v1/webhooks, /v1/usage, /v1/events, /v1/keys (owner key)
  event 20 %         POST /v1/events, a custom event both endpoints take
  whatsapp 20 %      a signed Cloud API notification: a new customer's message

A request's latency counts from when it was due, not from when it was sent,
so a stack that falls behind shows it. After the last request it waits for
the work the requests started: every event delivered to both endpoints (by
distinct `webhook-id`), every customer's message answered by the bot through
the fake Graph API. Prints throughput, p50/p99 per kind and errors (any
answer but the documented success, any delivery or reply missing).
"""

import argparse
import concurrent.futures
import json
import random
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from devstack import (
    PHONE_NUMBER_ID, RECEIVED, RECEIVED_LOCK, Api, admin_key, dev_stack, onboard,
    signed_inbound, start_receiver, wait_for,
)

STACK = "load"
DEV_TOKEN = "dev-whatsapp-token"
MIX = [("signup", 1), ("read", 5), ("event", 2), ("whatsapp", 2)]
READS = ["/v1/webhooks", "/v1/usage", "/v1/events?limit=10", "/v1/keys"]


def cpf(rng):
    """A valid CPF: nine digits and their two check digits."""
    digits = [rng.randrange(10) for _ in range(9)]
    for weight in (10, 11):
        total = sum(d * (weight - i) for i, d in enumerate(digits))
        digits.append(total * 10 % 11 % 10)
    return "".join(map(str, digits))


def seed(api, emulator):
    admin = admin_key(emulator, STACK)
    owner = onboard(api, emulator, admin, "Carga Ltda", "11.222.333/0001-81",
                    "carga@example.com")
    base = start_receiver().rsplit("/", 2)[0]
    for path in ("/a", "/b"):
        api.call("POST", "/v1/webhooks", {
            "url": base + path, "event_types": ["custom.load.tick"],
        }, owner, expect=201)
    store = api.call("POST", "/v1/whatsapp/stores", {
        "name": "Cantina da Nonna", "store_type": "restaurante",
        "base_prompt": "Você atende os clientes da Cantina da Nonna.", "message_limit": 30,
    }, owner, expect=201)
    api.call("PUT", f"/v1/whatsapp/stores/{store['id']}/numbers/1", {
        "phone_number_id": PHONE_NUMBER_ID, "waba_id": "102290129340398",
        "display_phone_number": "+55 11 98765-4321", "access_token": DEV_TOKEN,
    }, owner, expect=200)
    return owner


class Load:
    def __init__(self, api, owner, rng):
        self.api, self.owner, self.rng = api, owner, rng
        self.lock = threading.Lock()
        self.results = []  # (kind, latency seconds, ok)
        self.events = 0
        self.senders = set()

    def one(self, n, kind, due):
        ok = True
        try:
            if kind == "signup":
                body = {"organization_name": f"Empresa {n}", "document": cpf(self.rng),
                        "phone": "(11) 98765-4321", "email": f"carga{n}@example.com",
                        "imperius_licenses": 1}
                status, _ = self.api.call_status("POST", "/v1/signup", body)
                # A random CPF may repeat an earlier one: 409 is its answer.
                ok = status in (201, 409)
            elif kind == "read":
                status, _ = self.api.call_status("GET", READS[n % len(READS)], key=self.owner)
                ok = status == 200
            elif kind == "event":
                status, _ = self.api.call_status(
                    "POST", "/v1/events", {"type": "custom.load.tick", "data": {"n": n}},
                    key=self.owner)
                ok = status == 202
                with self.lock:
                    self.events += ok
            else:
                sender = f"55119{n:08d}"
                signed_inbound(self.api, f"Mensagem {n}: vocês entregam hoje?", sender=sender,
                               name=f"Cliente {n}")
                with self.lock:
                    self.senders.add(sender)
        except (SystemExit, OSError) as e:
            print(f"load: {kind} {n}: {e}", file=sys.stderr)
            ok = False
        latency = time.monotonic() - due
        with self.lock:
            self.results.append((kind, latency, ok))


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))] if values else 0.0


def graph_replies(graph, senders):
    with urllib.request.urlopen(f"{graph}/_fake/requests?limit=10000", timeout=60) as r:
        requests = json.load(r)["requests"]
    return {q["body"].get("to") for q in requests
            if q.get("wamid") and q.get("body", {}).get("to") in senders}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10.0, help="requests a second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=4,
                        help="instances of each function (nuvem-local --concurrency)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="load."))
    make_vars = [f"CONCURRENCY={args.concurrency}",
                 "DEV_ARGS=--quiet-functions --param SignupsPerHourPerAddress=1000000"]
    with dev_stack(work / "make-dev.log", STACK, make_vars) as ports:
        api = Api(f"http://127.0.0.1:{ports['API']}")
        graph = f"http://127.0.0.1:{ports['GRAPH']}"
        emulator = f"http://127.0.0.1:{ports['EMULATOR']}"
        owner = seed(api, emulator)
        rng = random.Random(20261130)
        load = Load(api, owner, rng)
        kinds = [kind for kind, weight in MIX for _ in range(weight)]
        total = int(args.rate * args.seconds)
        print(f"load: {total} requests at {args.rate}/s for {args.seconds:.0f} s, "
              f"{args.concurrency} instances per function", flush=True)
        start = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
            for n in range(total):
                due = start + n / args.rate
                time.sleep(max(0.0, due - time.monotonic()))
                pool.submit(load.one, n, kinds[n % len(kinds)], due)
        sent_for = time.monotonic() - start
        drained_from = time.monotonic()

        def delivered():
            with RECEIVED_LOCK:
                got = {path: len(ids) for path, ids in RECEIVED.items()}
            return got.get("/a", 0) >= load.events and got.get("/b", 0) >= load.events

        def replied():
            return len(graph_replies(graph, load.senders)) >= len(load.senders)

        wait_for("every event delivered to both endpoints", delivered)
        wait_for("a bot reply to every customer", replied)
        drained = time.monotonic() - drained_from

    results = load.results
    errors = sum(not ok for _, _, ok in results)
    print(f"\nload figures ({len(results)} requests in {sent_for:.1f} s, "
          f"{len(results) / sent_for:.1f}/s; {args.concurrency} instances per function)")
    print(f"  {'kind':<10}{'count':>7}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for kind, _ in MIX:
        latencies = [lat * 1000 for k, lat, _ in results if k == kind]
        errs = sum(not ok for k, _, ok in results if k == kind)
        print(f"  {kind:<10}{len(latencies):>7}{percentile(latencies, 50):>9.0f}"
              f"{percentile(latencies, 99):>9.0f}{errs:>8}")
    print(f"  events delivered to both endpoints: {load.events} x 2; "
          f"bot replies: {len(load.senders)} of {len(load.senders)}; "
          f"all done {drained:.1f} s after the last request")
    print(f"  errors: {errors}")
    if errors:
        sys.exit(f"load: {errors} errors (logs in {work})")


if __name__ == "__main__":
    main()
