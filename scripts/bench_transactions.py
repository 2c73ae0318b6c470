#!/usr/bin/env python3
"""TransactWriteItems on the local emulator, by table size (see emulator.py).

Benchmark (default): creates a table shaped like template.yaml's Table (pk/sk
and its GSIs), fills it to each size with ~300-byte items, and at each size
prints the median latency of GetItem, of a 4-item TransactWriteItems that
succeeds (Put, Update, Delete, ConditionCheck), of one that is cancelled by
its last item's condition (after moto has applied the first three), of a
Query of one account's partition and of a Query of the sparse gsi2 (the
outbox's shape: a tenth of the items, the first 10), as a markdown table.

The table is filled with BatchWriteItem in batches of --batch items (moto
does not enforce DynamoDB's 25-item limit), from --threads threads: ~0.3 ms
an item, so ~30 s to 100,000 items, about half the time 25-item batches
take. More threads barely help: the backend is serialised, and moto parses
requests under the GIL.

--check: runs transactions that fail in each way moto knows (a condition, a
validation error mid-transaction, two operations on one item, a missing
table, a too-large item, more than 100 items, an entry with two operations)
and transactions that succeed, on both tables' shapes (with and without a
sort key, one with a stream), and checks after each that every item, every
GSI's contents and the stream records are exactly as before a cancelled
transaction and exactly as expected after a successful one, and queries the
tables and indexes after each (partitions, key ranges, both directions,
pages, filters). It then runs the same steps on moto's own server and
requires the same answers and states (errors, CancellationReasons, items,
indexes, query pages, stream records) from both, and the same answers and
queue counts for sends to standard and FIFO queues (see emulator.py's SQS
note). Last, on the emulator only (moto's own re-executes them), retries of
TransactWriteItems with a ClientRequestToken: the same token and request
again answers the same success and changes nothing (items, indexes, stream
records), with another request IdempotentParameterMismatchException, and a
request without a token, or retrying a cancelled transaction, is executed
each time.

The emulator is started on a free 127.0.0.1 port (from scripts/emulator.py,
or --emulator SCRIPT), unless NUVEM_EMULATOR_URL names a running one.

usage: bench_transactions.py [--sizes 1000,10000,100000] [--reps N] [--check]
"""
import argparse
import concurrent.futures
import json
import os
import pathlib
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid

import boto3
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError

ROOT = pathlib.Path(__file__).resolve().parent.parent
ITEM_BYTES = 300


# ------------------------------------------------------------------ emulator


class Emulator:
    """An emulator on a free 127.0.0.1 port, from `command` + -H/-p; or the
    running one at `url`."""

    def __init__(self, command=None, url=None):
        self.command, self.url, self.process = command, url, None

    def __enter__(self):
        if self.url:
            return self
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [*self.command, "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                client(self.url).list_tables()
                return self
            except Exception:  # not listening yet
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"emulator did not start: {' '.join(self.command)}")
                time.sleep(0.1)

    def __exit__(self, *exc):
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:  # freeing 100,000 items takes a while
                self.process.kill()
                self.process.wait()


def client(url, service="dynamodb"):
    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"total_max_attempts": 1}, max_pool_connections=64),
    )


def tokenless_client(url):
    """A DynamoDB client whose TransactWriteItems carry no ClientRequestToken
    (botocore fills one in when none is given; this takes it out of the body),
    from its own session so that other clients keep theirs."""
    dynamodb = boto3.session.Session().client(
        "dynamodb", endpoint_url=url, region_name="us-east-1",
        aws_access_key_id="local", aws_secret_access_key="local",
        config=Config(retries={"total_max_attempts": 1}),
    )

    def strip_token(params, **_):
        body = json.loads(params["body"])
        body.pop("ClientRequestToken", None)
        params["body"] = json.dumps(body).encode()

    dynamodb.meta.events.register("before-call.dynamodb.TransactWriteItems", strip_token)
    return dynamodb


def template_table():
    """template.yaml's Table: its attribute definitions, keys and GSIs."""

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=Loader)
    properties = template["Resources"]["Table"]["Properties"]
    return {
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "KeySchema": properties["KeySchema"],
        "GlobalSecondaryIndexes": properties.get("GlobalSecondaryIndexes", []),
        "BillingMode": "PAY_PER_REQUEST",
    }


def create_table(dynamodb, name, **definition):
    dynamodb.create_table(TableName=name, **definition)
    dynamodb.get_waiter("table_exists").wait(TableName=name)


# ----------------------------------------------------------------- benchmark


def filler(i):
    """Item i: ten to an account partition, every one in a gsi1 partition,
    one in ten in gsi2 (a sparse index, as the outbox is), ~ITEM_BYTES."""
    item = {
        "pk": f"ACCOUNT#{i // 10:08d}",
        "sk": f"EVENT#{i:08d}",
        "gsi1pk": f"TYPE#{i % 50:02d}",
        "gsi1sk": f"2026-11-24T12:00:00.000Z#{i:08d}",
        "n": i,
    }
    if i % 10 == 0:
        item["gsi2pk"] = "OUTBOX"
        item["gsi2sk"] = f"2026-11-24T12:00:00.000Z#{i:08d}"
    size = sum(len(k) + len(str(v)) for k, v in item.items()) + len("payload")
    item["payload"] = "x" * max(0, ITEM_BYTES - size)
    return {k: {"N": str(v)} if isinstance(v, int) else {"S": v} for k, v in item.items()}


def fill(dynamodb, table, start, end, batch, threads):
    def put(first):
        requests = [{"PutRequest": {"Item": filler(i)}} for i in range(first, min(first + batch, end))]
        pending = {table: requests}
        while pending:
            pending = dynamodb.batch_write_item(RequestItems=pending)["UnprocessedItems"]

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, range(start, end, batch)))


def key_of(i):
    item = filler(i)
    return {"pk": item["pk"], "sk": item["sk"]}


def medians_ms(calls, reps, warmup=2):
    """Median latency of each call, the calls taking turns (so that a busy
    moment of the machine weighs on all of them alike)."""
    times = {name: [] for name in calls}
    for rep in range(warmup + reps):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            if rep >= warmup:
                times[name].append((time.perf_counter() - started) * 1000)
    return {name: statistics.median(t) for name, t in times.items()}


def bench(args, url):
    dynamodb = client(url)
    table = f"bench-{uuid.uuid4().hex[:8]}"
    create_table(dynamodb, table, **template_table())
    counter = {"pk": {"S": "BENCH#counter"}, "sk": {"S": "COUNTER"}}
    dynamodb.put_item(TableName=table, Item={**counter, "n": {"N": "0"}})
    rng = random.Random(1)
    rows, filled, serial = [], 0, {"ok": 0, "cancelled": 0}
    deleted = {}  # serial of a cancelled transaction -> the filler item it deleted

    def bench_key(series, i):
        return {"pk": {"S": f"BENCH#{series}"}, "sk": {"S": f"PUT#{i}"}}

    def exists(key):
        return "Item" in dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True)

    def transaction(size, series):
        """Put a new item, Update the counter, Delete (ok: the previous
        Put, so that the table keeps its size; cancelled: a filler item),
        ConditionCheck a filler item (cancelled: a condition that fails)."""
        serial[series] += 1
        i = serial[series]
        deleted_i, checked_i = rng.sample(range(size), 2)
        if series == "cancelled":
            deleted[i] = key_of(deleted_i)
        return [
            {"Put": {
                "TableName": table,
                "Item": {**bench_key(series, i), "gsi1pk": {"S": "BENCH"},
                         "gsi1sk": {"S": f"{i:08d}"}},
                "ConditionExpression": "attribute_not_exists(pk)",
            }},
            {"Update": {
                "TableName": table,
                "Key": counter,
                "UpdateExpression": "ADD n :one",
                "ConditionExpression": "attribute_exists(pk)",
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }},
            {"Delete": {
                "TableName": table,
                "Key": bench_key(series, i - 1) if series == "ok" else deleted[i],
            }},
            {"ConditionCheck": {
                "TableName": table,
                "Key": key_of(checked_i),
                "ConditionExpression": "attribute_exists(pk)" if series == "ok"
                else "attribute_not_exists(pk)",
            }},
        ]

    for size in args.sizes:
        started = time.perf_counter()
        fill(dynamodb, table, filled, size, args.batch, args.threads)
        fill_s = time.perf_counter() - started
        filled = size
        print(f"filled to {size:,} items in {fill_s:.1f} s", file=sys.stderr)

        def get():
            assert exists(key_of(rng.randrange(size)))

        def ok():
            dynamodb.transact_write_items(TransactItems=transaction(size, "ok"))

        def cancelled():
            try:
                dynamodb.transact_write_items(TransactItems=transaction(size, "cancelled"))
            except dynamodb.exceptions.TransactionCanceledException as e:
                codes = [r["Code"] for r in e.response["CancellationReasons"]]
                assert codes == ["None", "None", "None", "ConditionalCheckFailed"], codes
            else:
                raise AssertionError("the transaction was not cancelled")

        def query():
            partition = f"ACCOUNT#{rng.randrange(size // 10):08d}"
            items = dynamodb.query(
                TableName=table, KeyConditionExpression="pk = :p",
                ExpressionAttributeValues={":p": {"S": partition}})["Items"]
            assert len(items) == 10, (partition, len(items))

        def query_index():
            items = dynamodb.query(
                TableName=table, IndexName="gsi2", Limit=10,
                KeyConditionExpression="gsi2pk = :p AND gsi2sk >= :from",
                ExpressionAttributeValues={":p": {"S": "OUTBOX"},
                                           ":from": {"S": "2026-11-24"}})["Items"]
            assert len(items) == 10, len(items)

        medians = medians_ms({"get": get, "ok": ok, "cancelled": cancelled,
                              "query": query, "query_index": query_index}, args.reps)
        rows.append((size, fill_s, medians))

        # What the transactions left (no Scan: moto's takes seconds a page here).
        n = dynamodb.get_item(TableName=table, Key=counter)["Item"]["n"]["N"]
        assert int(n) == serial["ok"], (n, serial)
        assert exists(bench_key("ok", serial["ok"]))
        assert not exists(bench_key("ok", serial["ok"] - 1))
        assert not any(exists(bench_key("cancelled", i)) for i in deleted)
        assert all(exists(key) for key in deleted.values())
        deleted.clear()
        print(f"measured at {size:,} items", file=sys.stderr)

    dynamodb.delete_table(TableName=table)
    print(f"\nMedian of {args.reps} calls, ms (items of ~{ITEM_BYTES} bytes, "
          "table shaped as template.yaml's Table):\n")
    print("| items | GetItem | TransactWriteItems, 4 items | "
          "TransactWriteItems, 4 items, cancelled by the 4th | Query, a 10-item partition | "
          "Query of gsi2, first 10 | fill from the previous size |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for size, fill_s, m in rows:
        print(f"| {size:,} | {m['get']:.1f} | {m['ok']:.1f} | {m['cancelled']:.1f} "
              f"| {m['query']:.1f} | {m['query_index']:.1f} | {fill_s:.1f} s |")


# --------------------------------------------------------------------- check


def s(value):
    return {"S": value}


def scan_all(dynamodb, **params):
    items, page = [], {}
    while True:
        answer = dynamodb.scan(**params, **page)
        items += answer["Items"]
        if "LastEvaluatedKey" not in answer:
            return items
        page = {"ExclusiveStartKey": answer["LastEvaluatedKey"]}


class Check:
    """The check's steps against one emulator; `transcript` records every
    answer and every state, to compare two emulators."""

    def __init__(self, url, run):
        self.url, self.run_id = url, run
        self.dynamodb = client(url)
        self.streams = client(url, "dynamodbstreams")
        self.a, self.b = f"check-a-{run}", f"check-b-{run}"
        self.transcript, self.failures = [], []

    def setup(self):
        create_table(self.dynamodb, self.a, **template_table())
        create_table(
            self.dynamodb, self.b,
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        for i in range(60):
            item = {"pk": s(f"ACCOUNT#{i // 10}"), "sk": s(f"EVENT#{i:02d}"), "n": {"N": str(i)}}
            if i % 2 == 0:
                item |= {"gsi1pk": s(f"TYPE#{i % 4}"), "gsi1sk": s(f"{i:02d}")}
            if i % 3 == 0:
                item |= {"gsi2pk": s("OUTBOX"), "gsi2sk": s(f"{i:02d}")}
            self.dynamodb.put_item(TableName=self.a, Item=item)
        self.dynamodb.put_item(TableName=self.a, Item={
            "pk": s("COUNTER"), "sk": s("COUNTER"), "n": {"N": "5"}, "name": s("counter"),
            "gsi1pk": s("TYPE#0"), "gsi1sk": s("99"),
        })
        for i in range(10):
            self.dynamodb.put_item(TableName=self.b, Item={"id": s(f"B#{i}"), "v": {"N": str(i)}})
        self.stream_arn = self.dynamodb.describe_table(TableName=self.b)["Table"]["LatestStreamArn"]

    def stream_records(self):
        shard = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"][0]
        iterator = self.streams.get_shard_iterator(
            StreamArn=self.stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records = self.streams.get_records(ShardIterator=iterator, Limit=1000)["Records"]
        return [
            {k: r["dynamodb"].get(k) for k in ("Keys", "NewImage", "OldImage", "SequenceNumber")}
            | {"eventName": r["eventName"]}
            for r in records
        ]

    def state(self):
        d, a = self.dynamodb, self.a
        state = {
            "a": scan_all(d, TableName=a, ConsistentRead=True),
            "a.gsi1": scan_all(d, TableName=a, IndexName="gsi1"),
            "a.gsi2": scan_all(d, TableName=a, IndexName="gsi2"),
            "b": scan_all(d, TableName=self.b, ConsistentRead=True),
            "b.stream": self.stream_records(),
        }
        for p in ("TYPE#0", "TYPE#1", "TYPE#2", "MOVED"):
            state[f"a.gsi1 {p}"] = d.query(
                TableName=a, IndexName="gsi1", KeyConditionExpression="gsi1pk = :p",
                ExpressionAttributeValues={":p": s(p)},
            )["Items"]
        state["a.gsi2 OUTBOX"] = d.query(
            TableName=a, IndexName="gsi2", KeyConditionExpression="gsi2pk = :p",
            ExpressionAttributeValues={":p": s("OUTBOX")},
        )["Items"]
        state |= self.queries()
        # The indexes hold exactly the table's items that carry their keys.
        for index in ("gsi1", "gsi2"):
            keyed = [i for i in state["a"] if f"{index}pk" in i and f"{index}sk" in i]
            def dumped(items):
                return sorted(json.dumps(i, sort_keys=True) for i in items)

            if dumped(keyed) != dumped(state[f"a.{index}"]):
                self.failures.append(f"{index} does not hold the table's items with its keys")
        return state

    def query_pages(self, limit=None, **params):
        """Every page of a Query (of `limit` items each), as a list of pages."""
        pages, start = [], {}
        while True:
            answer = self.dynamodb.query(**params, **start, **({"Limit": limit} if limit else {}))
            pages.append({k: answer.get(k) for k in ("Items", "Count", "ScannedCount",
                                                     "LastEvaluatedKey")})
            if "LastEvaluatedKey" not in answer:
                return pages
            start = {"ExclusiveStartKey": answer["LastEvaluatedKey"]}

    def queries(self):
        """Queries of both tables and of the indexes, as the functions make
        them: partitions (present and missing), key ranges, both directions,
        pages, filters and projections."""
        a, b, q = self.a, self.b, self.query_pages

        def of(partition, condition="", index=None, **values):
            params = {"TableName": a, "KeyConditionExpression": f"{index or ''}pk = :p" +
                      (f" AND {condition}" if condition else ""),
                      "ExpressionAttributeValues": {":p": s(partition)} | {
                          f":{k}": s(v) for k, v in values.items()}}
            return params | ({"IndexName": index} if index else {})

        answers = {}
        for partition in ("ACCOUNT#0", "ACCOUNT#1", "ACCOUNT#3", "ACCOUNT#97", "ACCOUNT#missing"):
            answers[f"a {partition}"] = q(**of(partition))
            answers[f"a {partition} reversed, pages of 3"] = q(
                limit=3, ScanIndexForward=False, **of(partition))
        answers["a range"] = q(limit=4, **of("ACCOUNT#2", "sk BETWEEN :lo AND :hi",
                                             lo="EVENT#21", hi="EVENT#27"))
        answers["a prefix"] = q(**of("ACCOUNT#0", "begins_with(sk, :x)", x="NEW"))
        answers["a after"] = q(ScanIndexForward=False, **of("ACCOUNT#4", "sk > :x", x="EVENT#44"))
        filtered = of("ACCOUNT#5")
        filtered["ExpressionAttributeValues"][":n"] = {"N": "52"}
        answers["a filtered, projected"] = q(
            limit=2, FilterExpression="n > :n", ProjectionExpression="sk, n", **filtered)
        answers["a count"] = q(Select="COUNT", **of("ACCOUNT#1"))
        for partition in ("TYPE#0", "TYPE#2", "MOVED", "TYPE#missing"):
            answers[f"a.gsi1 {partition} pages of 2"] = q(limit=2, **of(partition, index="gsi1"))
            answers[f"a.gsi1 {partition} reversed, up to 30"] = q(
                ScanIndexForward=False, **of(partition, "gsi1sk <= :x", index="gsi1", x="30"))
        answers["a.gsi2 OUTBOX from 10, pages of 4"] = q(
            limit=4, **of("OUTBOX", "gsi2sk >= :x", index="gsi2", x="10"))
        for i in (1, 5, "new", "s1", "missing"):
            answers[f"b B#{i}"] = q(
                TableName=b, KeyConditionExpression="id = :p",
                ExpressionAttributeValues={":p": s(f"B#{i}")})
        return answers

    def transact(self, name, items):
        try:
            answer = self.dynamodb.transact_write_items(TransactItems=items)
            outcome = {"ok": {k: v for k, v in answer.items() if k != "ResponseMetadata"}}
        except ClientError as e:
            outcome = {"error": e.response["Error"],
                       "CancellationReasons": e.response.get("CancellationReasons")}
        self.transcript.append((name, outcome))
        return outcome

    def cancelled(self, name, items, error, reasons=None, unchanged=True):
        """A transaction that fails with `error` (and these reasons' codes):
        the state must be exactly as before it (unless moto leaves it not)."""
        before = self.state()
        outcome = self.transact(name, items)
        after = self.state()
        self.transcript.append((f"{name}: state", after))
        code = outcome.get("error", {}).get("Code")
        if code != error:
            self.failures.append(f"{name}: {code} instead of {error}: {outcome}")
        if reasons is not None:
            got = [r.get("Code") for r in outcome.get("CancellationReasons") or []]
            if got != reasons:
                self.failures.append(f"{name}: reasons {got} instead of {reasons}")
        if unchanged and after != before:
            changed = [k for k in before if before[k] != after[k]]
            self.failures.append(f"{name}: the failed transaction changed {changed}")
        return outcome

    def succeeds(self, name, items, expect):
        """A transaction that succeeds: each (table, key, item) of `expect`
        must hold (item None: absent), and no other item may change."""
        before = self.state()
        outcome = self.transact(name, items)
        after = self.state()
        self.transcript.append((f"{name}: state", after))
        if "ok" not in outcome:
            self.failures.append(f"{name}: failed: {outcome}")
            return
        for table, key, item in expect:
            got = self.dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
            if got != item:
                self.failures.append(f"{name}: {table} {key} is {got}, expected {item}")
        touched = {json.dumps(key, sort_keys=True) for _, key, _ in expect}

        def untouched(items, keys):
            return [i for i in items
                    if json.dumps({k: i[k] for k in keys}, sort_keys=True) not in touched]

        for part, keys in (("a", ("pk", "sk")), ("b", ("id",))):
            if untouched(before[part], keys) != untouched(after[part], keys):
                self.failures.append(f"{name}: items it does not name changed in {part}")

    def run(self):
        a, b = self.a, self.b
        counter = {"pk": s("COUNTER"), "sk": s("COUNTER")}

        def key(i):
            return {"pk": s(f"ACCOUNT#{i // 10}"), "sk": s(f"EVENT#{i:02d}")}

        def put(table, item, condition="attribute_not_exists(#k)", name="pk"):
            return {"Put": {"TableName": table, "Item": item, "ConditionExpression": condition,
                            "ExpressionAttributeNames": {"#k": name},
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}

        def check(table, key, condition, name="pk"):
            return {"ConditionCheck": {"TableName": table, "Key": key,
                                       "ConditionExpression": condition,
                                       "ExpressionAttributeNames": {"#k": name},
                                       "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}

        def delete(table, key):
            return {"Delete": {"TableName": table, "Key": key}}

        def update(table, key, expression, values=None, condition=None, names=None):
            op = {"TableName": table, "Key": key, "UpdateExpression": expression}
            if values:
                op["ExpressionAttributeValues"] = values
            if names:
                op["ExpressionAttributeNames"] = names
            if condition:
                op["ConditionExpression"] = condition
            return {"Update": op}

        new_item = {"pk": s("ACCOUNT#0"), "sk": s("NEW#1"), "gsi1pk": s("TYPE#0"), "gsi1sk": s("00")}
        moved = {":moved": s("MOVED"), ":one": {"N": "1"}}
        self.state()  # the invariants hold before any transaction

        self.cancelled("the last item's condition fails", [
            put(a, new_item),
            update(a, counter, "SET gsi1pk = :moved ADD n :one", moved),
            delete(a, key(13)),
            check(a, key(14), "attribute_not_exists(#k)"),
        ], "TransactionCanceledException", ["None", "None", "None", "ConditionalCheckFailed"])

        self.cancelled("the first item's condition fails (moto applies the rest)", [
            check(a, key(20), "attribute_not_exists(#k)"),
            put(a, {"pk": s("ACCOUNT#99"), "sk": s("NEW#2"), "gsi2pk": s("OUTBOX"), "gsi2sk": s("00")}),
            update(a, {"pk": s("ACCOUNT#98"), "sk": s("NEW#3")}, "SET gsi1pk = :moved, gsi1sk = :moved", {":moved": s("MOVED")}),
            update(a, key(21), "REMOVE gsi2pk SET gsi1pk = :moved, gsi1sk = :moved", {":moved": s("MOVED")}),
            delete(b, {"id": s("B#3")}),
            delete(b, {"id": s("B#0")}),
            put(b, {"id": s("B#new")}, name="id"),
        ], "TransactionCanceledException", ["ConditionalCheckFailed"] + ["None"] * 6)

        self.cancelled("a Put's own condition fails between writes", [
            delete(a, key(30)),
            delete(a, key(31)),
            put(a, {"pk": s("ACCOUNT#3"), "sk": s("EVENT#32"), "n": {"N": "0"}}),
            update(a, key(33), "SET n = :one", {":one": {"N": "1"}}),
        ], "TransactionCanceledException", ["None", "None", "ConditionalCheckFailed", "None"])

        self.cancelled("an Update's condition fails, with several failures", [
            update(a, counter, "ADD n :one", {":one": {"N": "1"}}, "n > :one"),
            update(a, key(40), "ADD n :one", {":one": {"N": "1"}}, "n < :one"),
            check(b, {"id": s("B#1")}, "attribute_not_exists(#k)", name="id"),
            delete(a, key(41)),
        ], "TransactionCanceledException", ["None", "ConditionalCheckFailed", "ConditionalCheckFailed", "None"])

        self.cancelled("a validation error mid-transaction (ADD to a string)", [
            put(a, new_item),
            delete(a, key(50)),
            update(a, counter, "ADD #name :one", {":one": {"N": "1"}}, names={"#name": "name"}),
        ], "ValidationException")

        self.cancelled("two operations on one item", [
            delete(a, key(51)),
            put(a, new_item),
            update(a, {"pk": s("ACCOUNT#0"), "sk": s("NEW#1")}, "SET n = :one", {":one": {"N": "1"}}),
        ], "ValidationException")

        self.cancelled("a missing table", [
            put(a, new_item),
            delete(b, {"id": s("B#4")}),
            delete(f"{a}-missing", key(1)),
        ], "TransactionCanceledException", ["None", "None", "ResourceNotFoundException"])

        self.cancelled("an item over 400 KB", [
            put(a, new_item),
            delete(b, {"id": s("B#5")}),
            put(b, {"id": s("B#big"), "blob": s("x" * 410_000)}, name="id"),
        ], "ValidationException")

        self.cancelled("more than 100 items", [
            check(a, key(i % 60) | {"sk": s(f"X#{i}")}, "attribute_not_exists(#k)") for i in range(101)
        ], "ValidationException")

        # moto checks that an entry has one operation only when it reaches it,
        # outside its rollback: the entries before it stay applied (so does
        # the emulator; the transcript's comparison shows it).
        self.cancelled("an entry with two operations (moto keeps the writes before it)", [
            put(a, {"pk": s("ACCOUNT#97"), "sk": s("KEPT")}),
            delete(a, key(52)) | put(a, {"pk": s("ACCOUNT#97"), "sk": s("NOT")}),
        ], "ValidationException", unchanged=False)

        new_b = {"id": s("B#s1"), "v": {"N": "1"}}
        self.succeeds("4 items succeed", [
            put(a, new_item),
            update(a, counter, "SET gsi1pk = :moved ADD n :one", moved, "attribute_exists(pk)"),
            delete(a, key(13)),
            check(a, key(14), "attribute_exists(#k)"),
        ], [
            (a, {"pk": s("ACCOUNT#0"), "sk": s("NEW#1")}, new_item),
            (a, counter, {**counter, "n": {"N": "6"}, "name": s("counter"),
                          "gsi1pk": s("MOVED"), "gsi1sk": s("99")}),
            (a, key(13), None),
            (a, key(14), {**key(14), "n": {"N": "14"}, "gsi1pk": s("TYPE#2"), "gsi1sk": s("14")}),
        ])

        self.succeeds("two tables succeed", [
            put(b, new_b, name="id"),
            delete(b, {"id": s("B#6")}),
            update(a, key(18), "REMOVE gsi1pk, gsi2pk"),
            update(a, {"pk": s("ACCOUNT#96"), "sk": s("NEW#4")}, "SET gsi2pk = :o, gsi2sk = :o", {":o": s("OUTBOX")}),
        ], [
            (b, {"id": s("B#s1")}, new_b),
            (b, {"id": s("B#6")}, None),
            (a, key(18), {**key(18), "n": {"N": "18"}, "gsi1sk": s("18"), "gsi2sk": s("18")}),
            (a, {"pk": s("ACCOUNT#96"), "sk": s("NEW#4")}, {
                "pk": s("ACCOUNT#96"), "sk": s("NEW#4"), "gsi2pk": s("OUTBOX"), "gsi2sk": s("OUTBOX")}),
        ])

        self.cancelled("a failure after successes", [
            delete(a, {"pk": s("ACCOUNT#0"), "sk": s("NEW#1")}),
            delete(b, {"id": s("B#s1")}),
            {"ConditionCheck": {"TableName": a, "Key": counter, "ConditionExpression": "n = :five",
                                "ExpressionAttributeValues": {":five": {"N": "5"}}}},
        ], "TransactionCanceledException", ["None", "None", "ConditionalCheckFailed"])
        self.transcript.append(("final state", self.state()))


    def retries(self):
        """TransactWriteItems retried with its ClientRequestToken (see
        emulator.py): recorded in `failures` only, since moto's own server
        executes every retry again."""
        a, b, d = self.a, self.b, self.dynamodb
        counter = {"pk": s("TOKEN#0"), "sk": s("COUNTER")}

        def token(name):
            return f"{self.run_id}-{name}"

        def put(table, item):
            return {"Put": {"TableName": table, "Item": item,
                            "ConditionExpression": "attribute_not_exists(#k)",
                            "ExpressionAttributeNames": {"#k": next(iter(item))}}}

        def add(n):
            return {"Update": {"TableName": a, "Key": counter, "UpdateExpression": "ADD n :n",
                               "ExpressionAttributeValues": {":n": {"N": str(n)}}}}

        def attempt(items, client=None, **params):
            try:
                answer = (client or d).transact_write_items(TransactItems=items, **params)
                return {"ok": {k: v for k, v in answer.items() if k != "ResponseMetadata"}}
            except ClientError as e:
                return {"error": e.response["Error"].get("Code")}

        def expect(name, outcome, wanted, before=None):
            """`outcome` is `wanted` ("ok", or an error's code), and when
            `before` is given the state is still `before`."""
            got = "ok" if "ok" in outcome else outcome["error"]
            if got != wanted:
                self.failures.append(f"retries: {name}: {got} instead of {wanted}")
            if before is not None:
                after = self.state()
                if after != before:
                    changed = [k for k in before if before[k] != after[k]]
                    self.failures.append(f"retries: {name}: changed {changed}")

        def count():
            item = d.get_item(TableName=a, Key=counter, ConsistentRead=True).get("Item")
            return int(item["n"]["N"]) if item else 0

        def holds(table, key):
            return "Item" in d.get_item(TableName=table, Key=key, ConsistentRead=True)

        # The same token and request: the retry answers as the first did and
        # changes nothing (the Put's condition would fail, the ADD would
        # count twice, b's Put would add a stream record).
        once = [put(a, {"pk": s("TOKEN#1"), "sk": s("PUT")}), add(1),
                put(b, {"id": s("B#token1"), "v": {"N": "1"}})]
        first = attempt(once, ClientRequestToken=token("once"))
        expect("the first request", first, "ok")
        after_first = self.state()
        retry = attempt(once, ClientRequestToken=token("once"))
        expect("the same token and request again", retry, "ok", after_first)
        if retry != first:
            self.failures.append(f"retries: the retry answered {retry}, the first {first}")
        if count() != 1:
            self.failures.append(f"retries: the counter is {count()} after one ADD and its retry")

        # The same token with another request: a mismatch, nothing changes.
        expect("the same token, other items", attempt(
            [put(a, {"pk": s("TOKEN#1"), "sk": s("PUT")}), add(2),
             put(b, {"id": s("B#token1"), "v": {"N": "1"}})],
            ClientRequestToken=token("once")), "IdempotentParameterMismatchException", after_first)
        expect("the same token and items, another parameter", attempt(
            once, ClientRequestToken=token("once"), ReturnConsumedCapacity="TOTAL"),
            "IdempotentParameterMismatchException", after_first)

        # No token, or a new one each time (botocore's default): executed
        # each time, so the second Put's condition fails.
        tokenless = tokenless_client(self.url)
        twice = [put(a, {"pk": s("TOKEN#2"), "sk": s("PUT")}), add(1)]
        expect("no token, first", attempt(twice, client=tokenless), "ok")
        before = self.state()
        expect("no token, again", attempt(twice, client=tokenless),
               "TransactionCanceledException", before)
        expect("no token, the ADD alone again", attempt([add(1)], client=tokenless), "ok")
        thrice = [put(a, {"pk": s("TOKEN#3"), "sk": s("PUT")}), add(1)]
        expect("a new token, first", attempt(thrice), "ok")
        before = self.state()
        expect("a new token, again", attempt(thrice), "TransactionCanceledException", before)
        if count() != 4:
            self.failures.append(f"retries: the counter is {count()}, expected 4")

        # A cancelled transaction is not remembered: its retry is executed,
        # and succeeds once its condition holds; a retry of that is a no-op.
        gate = {"pk": s("TOKEN#gate"), "sk": s("GATE")}
        gated = [put(a, {"pk": s("TOKEN#4"), "sk": s("PUT")}), add(10),
                 {"ConditionCheck": {"TableName": a, "Key": gate,
                                     "ConditionExpression": "attribute_exists(pk)"}}]
        before = self.state()
        expect("a cancelled transaction", attempt(gated, ClientRequestToken=token("gated")),
               "TransactionCanceledException", before)
        d.put_item(TableName=a, Item=gate)
        expect("its retry, the condition now holding",
               attempt(gated, ClientRequestToken=token("gated")), "ok")
        if not holds(a, {"pk": s("TOKEN#4"), "sk": s("PUT")}) or count() != 14:
            self.failures.append(f"retries: the cancelled transaction's retry was not applied "
                                 f"(counter {count()})")
        before = self.state()
        expect("a retry of that retry", attempt(gated, ClientRequestToken=token("gated")),
               "ok", before)


def sqs_steps(url, run):
    """Sends to a standard and a FIFO queue (content-based deduplication, a
    duplicate, delays, batches), receives some, and records each answer
    (ids and receipt handles left out: they are random) and the queues'
    counts after each step."""
    sqs = client(url, "sqs")
    transcript = []
    standard = sqs.create_queue(QueueName=f"check-{run}")["QueueUrl"]
    fifo = sqs.create_queue(QueueName=f"check-{run}.fifo", Attributes={
        "FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
    explicit = sqs.create_queue(QueueName=f"check-x-{run}.fifo", Attributes={
        "FifoQueue": "true"})["QueueUrl"]

    def record(name, call):
        try:
            answer = call()
            answer = {k: v for k, v in answer.items() if k != "ResponseMetadata"}
            for key in ("MessageId", "SequenceNumber"):
                answer.pop(key, None)
            for entry in answer.get("Successful", []):
                entry.pop("MessageId", None)
                entry.pop("SequenceNumber", None)
            for message in answer.get("Messages", []):
                message.pop("MessageId", None)
                message.pop("ReceiptHandle", None)
            outcome = {"ok": answer}
        except ClientError as e:
            outcome = {"error": e.response["Error"].get("Code")}
        counts = {
            queue: sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=[
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed"])["Attributes"]
            for queue in (standard, fifo, explicit)
        }
        transcript.append((name, outcome, {q.rsplit("/", 1)[1].replace(run, "R"): c
                                           for q, c in counts.items()}))

    for i in range(30):
        record(f"standard {i}", lambda i=i: sqs.send_message(
            QueueUrl=standard, MessageBody=f"m{i}", DelaySeconds=600 if i % 5 == 0 else 0))
    record("standard batch", lambda: sqs.send_message_batch(QueueUrl=standard, Entries=[
        {"Id": f"b{i}", "MessageBody": f"b{i}"} for i in range(10)]))
    record("standard receive", lambda: sqs.receive_message(
        QueueUrl=standard, MaxNumberOfMessages=7, VisibilityTimeout=600))
    for i in (1, 2, 1, 3):
        record(f"fifo {i}", lambda i=i: sqs.send_message(
            QueueUrl=fifo, MessageBody=f"f{i}", MessageGroupId="g"))
    record("fifo delayed", lambda: sqs.send_message(
        QueueUrl=fifo, MessageBody="late", MessageGroupId="g", DelaySeconds=5))
    record("fifo without group", lambda: sqs.send_message(QueueUrl=fifo, MessageBody="x"))
    record("explicit without id", lambda: sqs.send_message(
        QueueUrl=explicit, MessageBody="x", MessageGroupId="g"))
    record("explicit with id", lambda: sqs.send_message(
        QueueUrl=explicit, MessageBody="x", MessageGroupId="g", MessageDeduplicationId="d"))
    record("explicit duplicate", lambda: sqs.send_message(
        QueueUrl=explicit, MessageBody="y", MessageGroupId="g", MessageDeduplicationId="d"))
    record("fifo receive", lambda: sqs.receive_message(
        QueueUrl=fifo, MaxNumberOfMessages=10, VisibilityTimeout=600))
    return transcript


def check(args, url):
    run = uuid.uuid4().hex[:8]
    with Emulator(url=url) as emulator:
        patched = Check(emulator.url, run)
        patched.setup()
        patched.run()
        patched.transcript += sqs_steps(emulator.url, run)
        patched.retries()
    print(f"emulator: {len(patched.transcript)} answers and states recorded, "
          f"{len(patched.failures)} failures")
    for failure in patched.failures:
        print(f"  FAIL {failure}")
    ok = not patched.failures
    if args.reference:
        moto_server = pathlib.Path(sys.executable).parent / "moto_server"
        with Emulator(command=[str(moto_server)]) as reference_server:
            reference = Check(reference_server.url, run)
            reference.setup()
            reference.run()
            reference.transcript += sqs_steps(reference_server.url, run)
        differences = [
            (mine[0], mine[1], theirs[1])
            for mine, theirs in zip(patched.transcript, reference.transcript)
            if mine != theirs
        ]
        if len(patched.transcript) != len(reference.transcript):
            differences.append(("length", len(patched.transcript), len(reference.transcript)))
        print(f"moto's own server: {len(differences)} differences from the emulator")
        for name, mine, theirs in differences:
            print(f"  DIFF {name}:\n    emulator: {json.dumps(mine)[:2000]}\n"
                  f"    moto:     {json.dumps(theirs)[:2000]}")
        ok = ok and not differences
    print("check: OK" if ok else "check: FAILED")
    return 0 if ok else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000",
                        type=lambda v: [int(x) for x in v.split(",")])
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=500, help="items per BatchWriteItem")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--emulator", default=str(ROOT / "scripts" / "emulator.py"),
                        help="the emulator script to start (ignored with NUVEM_EMULATOR_URL)")
    parser.add_argument("--check", action="store_true", help="check rollbacks instead")
    parser.add_argument("--no-reference", dest="reference", action="store_false",
                        help="with --check: do not compare with moto's own server")
    args = parser.parse_args()
    url = os.environ.get("NUVEM_EMULATOR_URL")
    command = [sys.executable, args.emulator]
    if args.check:
        if url is None:
            with Emulator(command=command) as emulator:
                return check(args, emulator.url)
        return check(args, url)
    with Emulator(command=command, url=url) as emulator:
        bench(args, emulator.url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
