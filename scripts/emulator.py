"""The local AWS emulator: moto's server, with DynamoDB isolated as DynamoDB is.

moto's server answers requests on many threads, and its DynamoDB backend does
not isolate them: a TransactWriteItems checks its conditions, writes, and on
failure restores a copy of the whole table, so two racing transactions can
both pass their conditions or undo each other's writes. Real DynamoDB
serialises conflicting writes (the loser is cancelled). Serialising every
DynamoDB backend call restores that contract, so that nuvem's tests of
conditional writes under concurrency test nuvem, not the emulator's races.
Other services (SQS long polls above all) stay concurrent.

Usage: the same arguments as `moto_server` (installed as .venv/bin/nuvem-emulator).
"""
import functools
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.server import main

_LOCK = threading.RLock()


def _serialised(method):
    @functools.wraps(method)
    def call(*args, **kwargs):
        with _LOCK:
            return method(*args, **kwargs)

    return call


for _name, _method in list(vars(DynamoDBBackend).items()):
    if callable(_method) and not _name.startswith("_"):
        setattr(DynamoDBBackend, _name, _serialised(_method))

if __name__ == "__main__":
    main()
