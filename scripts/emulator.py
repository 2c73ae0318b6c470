"""The local AWS emulator: moto's server, with DynamoDB isolated as DynamoDB is,
and TransactWriteItems as fast on a large table as on a small one.

moto's server answers requests on many threads, and its DynamoDB backend does
not isolate them: a TransactWriteItems checks its conditions, writes, and on
failure restores a copy of the whole table, so two racing transactions can
both pass their conditions or undo each other's writes. Real DynamoDB
serialises conflicting writes (the loser is cancelled). Serialising every
DynamoDB backend call restores that contract, so that nuvem's tests of
conditional writes under concurrency test nuvem, not the emulator's races.
Other services (SQS long polls above all) stay concurrent.

That copy is also slow: moto (5.2.5) deep-copies every table a
TransactWriteItems names before applying it, in case it must roll back, and
does so once per item of the transaction, so a 4-item transaction costs
~140 ms on a 1,000-item table, ~1.6 s on a 10,000-item one, and grows with
the table (GetItem stays ~5 ms). Since calls are serialised, nothing
but the transaction can change a table between that copy and the rollback,
and a transaction writes only the items it names. So here the copy step
(`copy.deepcopy(self.tables[name])`, inside transact_write_items) saves only
those items, a deep copy of each or its absence, and moto's rollback step
(`self.tables[name] = <the copy>`) puts exactly those back, on the same
table object. Everything else is moto's own transact_write_items, unchanged:
its validation, conditions, CancellationReasons, ALL_OLD items, and its
rollback in exactly the cases where it rolls back (it does not, for one, when
an entry holds two operations: the entries before it stay written, in moto
and here). A 4-item transaction then costs the same ~10 ms at 100,000 items.

moto keeps no index structures (it derives GSI and LSI results from
`table.items` at each Query and Scan), so what a rollback must restore is:
- each named item where `table.items` holds it (`items[hash][range]`, or
  `items[hash]` without a sort key), in its place in that dict: only a
  Delete takes an entry out, so the dict's order is saved for those;
- no partition the transaction created (moto's GetItem of a missing hash key
  inserts an empty one into the defaultdict);
- the table's stream records, if it has a stream.
`scripts/bench_transactions.py --check` compares cancelled and successful
transactions, their answers and the tables after them, with moto's own.

Queries are slow on a large table too: moto's Table.query takes its
candidates from `all_items()`, which sorts every item of the table, and then
keeps those of the queried partition, so a Query grows with the table
however small its partition: one of a 10-item partition took 25 ms at 1,000
items, 60 ms at 10,000 and 248 ms at 30,000 (items put in key order, the
sort's best case). Here, inside a Query, `all_items()` answers only what the
query can match: the queried partition of the table (`items[hash]`), or for
an index the items whose index hash key is the queried one, unsorted, since
moto sorts an index's candidates itself by their full key (index keys, then
the table's). A table Query then costs the same at any size; an index Query
still looks at every item's hash key, but sorts only its partition.

SQS has the same shape of problem: to send a message, moto reads
`queue.attributes` (for ContentBasedDeduplication), a property that also
counts the queue's messages three ways (visible, in flight, delayed), each
by walking every message; so a send slowed with the queue's backlog (~60 %
of the emulator's time while a scheduler run queued 10,000 downloads). While
this thread is sending, those three counts answer 0 without the walk: a send
uses no count (it answers the message's id and digests), and every other
call, GetQueueAttributes above all, still counts. `--check` compares sends
to standard and FIFO queues, their deduplication, and the counts after, with
moto's own server. The rest is moto's own query: its ordering,
conditions, paging, filters and projections. `--check` compares queries of
the table and its indexes (ranges, both directions, pages) with moto's too.

TransactWriteItems honours its ClientRequestToken, as DynamoDB does and
moto does not: a retry of a transaction that succeeded (the SDK retries with
the same token after, say, a dropped connection) answers success again and
changes nothing, where moto would execute it again and fail its conditions
against its own first write. For 10 minutes (monotonic) after the first
request with a token completes, the same token with the same request (every
field but the token, compared as sorted JSON) answers what that request
answered; with another request, IdempotentParameterMismatchException. Only
transactions that succeeded are remembered (a cancelled one changed nothing,
so running its retry again is the same), per account and region, and the
expired ones are forgotten as requests come. A request with a token is
handled whole under the DynamoDB lock, so a retry racing its first attempt
waits for it and then answers as a retry (DynamoDB may answer
TransactionInProgressException then). `--check` tests the retries, on the
emulator only (moto re-executes them).

S3 event notifications carry a `sequencer`, as S3's do and moto's do not:
an upper-case hexadecimal number, larger for each later change (S3 promises
that only per key; here it holds across keys too), the same for every
destination of one change. quota-alerts orders an object's records by it, so
a late redelivery of an overwritten object's older record no longer counts
that older size again. The numbers start from the clock at start-up, so they
keep growing across restarts. moto's S3 calls run on many threads: each
change of an object and its notification are made under one lock, so the
numbers follow the order in which the changes were applied.

A Query whose ExclusiveStartKey names another partition than the queried
one fails with ValidationException ("outside query boundaries"), as in
DynamoDB; moto skipped to the next item of the queried partition. So a
listing cursor forged from another account's keys is refused here as it
would be in AWS (the API answers it 422 on `cursor`).

One fix: moto's `/moto-api/data.json` (the sent emails that `make emails` and
the tests read) answered 500 once an IAM user had been deleted (a storage
key revoked): moto keeps the deleted user among the instances it reports,
and its `group_list` then raises NoSuchEntity, which data.json does not
catch. Here a deleted user's groups are none.

Usage: the same arguments as `moto_server` (installed as .venv/bin/nuvem-emulator).
"""
import collections
import copy
import functools
import hashlib
import inspect
import json
import threading
import time

import moto.dynamodb.models as dynamodb_models
import moto.iam.exceptions as iam_exceptions
import moto.iam.models as iam_models
import moto.s3.models as s3_models
import moto.s3.notifications as s3_notifications
import moto.sqs.models as sqs_models
from moto.core.responses import ActionResult
from moto.dynamodb.exceptions import (
    ERROR_TYPE_PREFIX,
    DynamodbException,
    MockValidationException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler
from moto.server import main

_LOCK = threading.RLock()


def _serialised(method):
    @functools.wraps(method)
    def call(*args, **kwargs):
        with _LOCK:
            return method(*args, **kwargs)

    return call


# ---------------------------------------------------------------------------
# TransactWriteItems: roll back the items the transaction names, not the table.

_moto_transact_write_items = DynamoDBBackend.transact_write_items
_COPY_STEP = "original_table_state[table_name] = copy.deepcopy("
_ROLLBACK_STEP = "self.tables[table_name] = original_table_state[table_name]"
_source = inspect.getsource(_moto_transact_write_items)
if _COPY_STEP not in _source or _ROLLBACK_STEP not in _source:
    raise RuntimeError(
        "moto's transact_write_items no longer copies and restores whole tables "
        "as scripts/emulator.py expects: re-read it before upgrading moto"
    )

# The transaction this thread is applying: (backend, its items, the snapshots
# taken so far by table id). Set only inside transact_write_items below.
_TRANSACTION = threading.local()
_WHOLE_TABLE = object()  # the dict of a table without a sort key: table.items


def _named_items(backend, table, transact_items):
    """(operation, hash key, range key) of each item of the transaction on
    `table`, found as moto finds them (Put: the item's key attributes; the
    others: Key). An operation whose key cannot be read is skipped: moto fails
    it before any write."""
    for entry in transact_items:
        try:
            op_type, op = next(iter(entry.items()))
            if backend.get_table(op["TableName"]) is not table:
                continue
            key = op["Item"] if op_type == "Put" else op["Key"]
            hash_key = DynamoType(key[table.hash_key_attr])
            range_key = (
                DynamoType(key[table.range_key_attr])
                if table.range_key_attr is not None
                else None
            )
        except Exception:  # moto fails this operation, and records why, itself
            continue
        yield op_type, hash_key, range_key


class _NamedItems:
    """What one transaction can change in one table, as it was before it."""

    def __init__(self, backend, table, transact_items):
        self.table = table
        items = table.items
        self.new_partitions = set()  # hash keys absent from items before
        self.saved = {}  # (hash, range) -> deep copy of the item, or None
        self.orders = {}  # container id -> its keys in order, before
        for op_type, hash_key, range_key in _named_items(backend, table, transact_items):
            if table.has_range_key:
                if hash_key not in items:  # (not items[hash_key]: a defaultdict)
                    self.new_partitions.add(hash_key)
                    continue
                container, key, container_id = items[hash_key], range_key, hash_key
            else:
                container, key, container_id = items, hash_key, _WHOLE_TABLE
            current = container.get(key)
            if (hash_key, range_key) not in self.saved:
                self.saved[(hash_key, range_key)] = copy.deepcopy(current)
            # Only a delete takes an entry out of its dict (put and update
            # assign in place); putting it back appends it, so keep the order.
            if op_type == "Delete" and current is not None:
                self.orders.setdefault(container_id, list(container))
        shard = table.stream_shard
        self.stream = None if shard is None else (shard, shard.items, len(shard.items))

    def restore(self):
        table, items = self.table, self.table.items
        for hash_key in self.new_partitions:
            items.pop(hash_key, None)
        for (hash_key, range_key), item in self.saved.items():
            if table.has_range_key:
                container, key = items[hash_key], range_key
            else:
                container, key = items, hash_key
            if item is None:
                container.pop(key, None)
            else:
                container[key] = item
        for container_id, order in self.orders.items():
            container = items if container_id is _WHOLE_TABLE else items[container_id]
            if list(container) != order:
                entries = dict(container)
                container.clear()
                container.update((key, entries[key]) for key in order)
        if self.stream is not None:
            shard, records, count = self.stream
            if shard.items is not records or len(records) != count:
                shard.items = records[:count]
        return table


class _CopyModule:
    """moto.dynamodb.models' `copy`: its deepcopy of a table, inside
    transact_write_items, is the snapshot of the transaction's items."""

    def __getattr__(self, name):
        return getattr(copy, name)

    @staticmethod
    def deepcopy(obj, memo=None):
        transaction = getattr(_TRANSACTION, "current", None)
        if transaction is None or not isinstance(obj, Table):
            return copy.deepcopy(obj, memo)
        backend, transact_items, snapshots = transaction
        # Called once per item of the transaction, before any write: the same
        # snapshot serves them all.
        if id(obj) not in snapshots:
            snapshots[id(obj)] = _NamedItems(backend, obj, transact_items)
        return snapshots[id(obj)]


class _RollbackTables(collections.OrderedDict):
    """backend.tables during a transaction: moto's rollback assigns each
    table's snapshot back; that assignment restores the snapshot's items."""

    def __setitem__(self, name, table):
        if isinstance(table, _NamedItems):
            table = table.restore()
        super().__setitem__(name, table)


def _transact_write_items(self, transact_items):
    tables = self.tables
    self.tables = _RollbackTables(tables)
    _TRANSACTION.current = (self, transact_items, {})
    try:
        return _moto_transact_write_items(self, transact_items)
    finally:
        _TRANSACTION.current = None
        self.tables = tables


dynamodb_models.copy = _CopyModule()
DynamoDBBackend.transact_write_items = functools.wraps(_moto_transact_write_items)(
    _transact_write_items
)

# ---------------------------------------------------------------------------
# TransactWriteItems: a ClientRequestToken makes a retry answer, not execute.

_moto_handle_transact_write_items = DynamoHandler.transact_write_items
_TOKEN_WINDOW_S = 600.0  # DynamoDB's: 10 minutes after the first request completes
# (account, region, token) -> (completed at, request digest, answer), oldest
# first: only successful transactions, the expired ones forgotten as we go.
_TOKENS = collections.OrderedDict()


class IdempotentParameterMismatchException(DynamodbException):
    error_type = ERROR_TYPE_PREFIX + "IdempotentParameterMismatchException"

    def __init__(self):
        super().__init__(
            IdempotentParameterMismatchException.error_type,
            message="The request uses the same client token as a previous, but "
            "non-identical request. Do not reuse a client token with different "
            "requests, unless the requests are identical.",
        )


def _request_digest(body):
    """The request but its token, canonically (sorted JSON), hashed."""
    request = {name: value for name, value in body.items() if name != "ClientRequestToken"}
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _forget_expired_tokens(now):
    while _TOKENS:
        completed_at = next(iter(_TOKENS.values()))[0]
        if now - completed_at < _TOKEN_WINDOW_S:
            return
        _TOKENS.popitem(last=False)


def _handle_transact_write_items(self):
    token = self.body.get("ClientRequestToken")
    if not token:
        return _moto_handle_transact_write_items(self)
    key = (self.current_account, self.region, token)
    digest = _request_digest(self.body)
    with _LOCK:
        _forget_expired_tokens(time.monotonic())
        if key in _TOKENS:
            _, first_digest, answer = _TOKENS[key]
            if first_digest != digest:
                raise IdempotentParameterMismatchException()
            return ActionResult(copy.deepcopy(answer))
        result = _moto_handle_transact_write_items(self)  # raises if cancelled
        _TOKENS[key] = (time.monotonic(), digest, copy.deepcopy(result.result))
        return result


DynamoHandler.transact_write_items = functools.wraps(_moto_handle_transact_write_items)(
    _handle_transact_write_items
)

# ---------------------------------------------------------------------------
# Query: candidates from the queried partition, not the sorted whole table.

_moto_query = Table.query
_moto_all_items = Table.all_items
_QUERY_SIGNATURE = inspect.signature(_moto_query)
if inspect.getsource(_moto_query).count("for item in self.all_items()") != 2:
    raise RuntimeError(
        "moto's Table.query no longer takes its candidates from all_items() as "
        "scripts/emulator.py expects: re-read it before upgrading moto"
    )
_QUERY = threading.local()  # (table, hash key, index name) of this thread's query


def _query(self, *args, **kwargs):
    arguments = _QUERY_SIGNATURE.bind(self, *args, **kwargs).arguments
    _check_start_key(self, arguments)
    _QUERY.current = (self, arguments.get("hash_key"), arguments.get("index_name"))
    try:
        return _moto_query(self, *args, **kwargs)
    finally:
        _QUERY.current = None


def _check_start_key(table, arguments):
    """DynamoDB refuses an ExclusiveStartKey outside the queried partition
    (moto skips to the next item as if it were in it): a cursor forged from
    another partition's keys must fail here as it fails in AWS."""
    start, hash_key = arguments.get("exclusive_start_key"), arguments.get("hash_key")
    if not start or hash_key is None:
        return
    index_name = arguments.get("index_name")
    if index_name is None:
        name = table.hash_key_attr
    else:
        schema = table.get_index(index_name).schema
        names = [key["AttributeName"] for key in schema if key["KeyType"] == "HASH"]
        name = names[0] if len(names) == 1 else None
    given = start.get(name) if name else None
    if given is not None and DynamoType(given) != hash_key:
        raise MockValidationException(
            "The provided starting key is outside query boundaries based on provided conditions"
        )


def _all_items(self):
    query = getattr(_QUERY, "current", None)
    if query is None or query[0] is not self:
        return _moto_all_items(self)
    _, hash_key, index_name = query
    if index_name is not None:  # moto sorts the matches by their full key
        return _index_partition(self, index_name, hash_key)
    partition = self.items.get(hash_key)  # .get: items is a defaultdict
    if partition is None:
        return []
    if not self.range_key_attr:
        return [partition]
    return list(partition.values())  # moto sorts them by range key


def _index_partition(table, index_name, hash_key):
    """The items of the table whose index hash key is `hash_key` (a string or
    binary, compared by value as DynamoType compares them), or every item
    when that cannot be told so simply: moto checks its own conditions on
    them anyway."""
    items = (
        table.items.values()
        if not table.range_key_attr
        else (item for partition in table.items.values() for item in partition.values())
    )
    index = table.get_index(index_name)
    hash_attrs = [key["AttributeName"] for key in index.schema if key["KeyType"] == "HASH"]
    if len(hash_attrs) != 1 or hash_key is None or hash_key.type not in ("S", "B"):
        return list(items)
    name, kind, value = hash_attrs[0], hash_key.type, hash_key.value
    matches = []
    for item in items:
        attribute = item.attrs.get(name)
        if attribute is not None and attribute.type == kind and attribute.value == value:
            matches.append(item)
    return matches


Table.query = functools.wraps(_moto_query)(_query)
Table.all_items = functools.wraps(_moto_all_items)(_all_items)

# ---------------------------------------------------------------------------
# data.json after an IAM user is deleted (see the docstring).

_moto_group_list = iam_models.User.group_list.fget


@functools.wraps(_moto_group_list)
def _group_list(user):
    try:
        return _moto_group_list(user)
    except iam_exceptions.NoSuchEntity:
        return []


iam_models.User.group_list = property(_group_list)

# ---------------------------------------------------------------------------
# SendMessage: no count of the queue's messages (see the docstring).

_SENDING = threading.local()
_COUNTS = (
    "approximate_number_of_messages",
    "approximate_number_of_messages_delayed",
    "approximate_number_of_messages_not_visible",
)
for _count in _COUNTS:
    if not isinstance(vars(sqs_models.Queue).get(_count), property):
        raise RuntimeError(
            f"moto's SQS Queue.{_count} is no longer a property as scripts/emulator.py "
            "expects: re-read it before upgrading moto"
        )


def _count_unless_sending(counted):
    @functools.wraps(counted)
    def count(queue):
        return 0 if getattr(_SENDING, "active", False) else counted(queue)

    return property(count)


for _count in _COUNTS:
    setattr(sqs_models.Queue, _count, _count_unless_sending(vars(sqs_models.Queue)[_count].fget))

_moto_send_message = sqs_models.SQSBackend.send_message


@functools.wraps(_moto_send_message)
def _send_message(self, *args, **kwargs):
    _SENDING.active = True
    try:
        return _moto_send_message(self, *args, **kwargs)
    finally:
        _SENDING.active = False


sqs_models.SQSBackend.send_message = _send_message

for _name, _method in list(vars(DynamoDBBackend).items()):
    if callable(_method) and not _name.startswith("_"):
        setattr(DynamoDBBackend, _name, _serialised(_method))


# ---------------------------------------------------------------------------
# S3 notifications: a sequencer per change (see the docstring).

_S3_LOCK = threading.RLock()
_SEQUENCER = {"next": time.time_ns()}
_NOTIFYING = threading.local()
_moto_send_event = s3_notifications.send_event
_moto_get_s3_event = s3_notifications._get_s3_event


@functools.wraps(_moto_send_event)
def _send_event(*args, **kwargs):
    with _S3_LOCK:
        _SEQUENCER["next"] += 1
        _NOTIFYING.sequencer = f"{_SEQUENCER['next']:016X}"
    try:
        return _moto_send_event(*args, **kwargs)
    finally:
        _NOTIFYING.sequencer = None


@functools.wraps(_moto_get_s3_event)
def _get_s3_event(*args, **kwargs):
    event = _moto_get_s3_event(*args, **kwargs)
    sequencer = getattr(_NOTIFYING, "sequencer", None)
    if sequencer is not None:
        for record in event["Records"]:
            record["s3"]["object"]["sequencer"] = sequencer
    return event


s3_notifications.send_event = _send_event
s3_notifications._get_s3_event = _get_s3_event


def _one_change_at_a_time(method):
    @functools.wraps(method)
    def change(*args, **kwargs):
        with _S3_LOCK:
            return method(*args, **kwargs)

    return change


for _name in (
    "put_object",
    "copy_object",
    "complete_multipart_upload",
    "delete_object",
    "delete_objects",
):
    setattr(
        s3_models.S3Backend,
        _name,
        _one_change_at_a_time(getattr(s3_models.S3Backend, _name)),
    )

if __name__ == "__main__":
    main()
