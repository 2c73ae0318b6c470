"""Uploads a file as a backup client does, configured only from a storage
key's answer (`POST /v1/storage-keys`): its endpoint, region, access key ID
and secret access key, as Imperius Backup's "S3 Compatible" destination
takes them. Files above 5 MiB go up in 5 MiB parts (S3 multipart upload),
as backup software sends large archives.

Usage:
  .venv/bin/python scripts/s3_backup.py KEY.json BUCKET FILE [OBJECT_KEY]
  (KEY.json: the answer of POST /v1/storage-keys; `-` reads it from stdin)

Prints one JSON line: the bucket, key, size and how many parts were sent.
"""
import json
import os
import sys

import boto3
from boto3.s3.transfer import TransferConfig

PART = 5 * 1024 * 1024


def main(argv):
    if len(argv) not in (4, 5):
        sys.exit(__doc__)
    key_file, bucket, path = argv[1], argv[2], argv[3]
    object_key = argv[4] if len(argv) == 5 else os.path.basename(path)
    answer = json.load(sys.stdin if key_file == "-" else open(key_file, encoding="utf-8"))
    s3 = boto3.client(
        "s3",
        endpoint_url=answer["endpoint"],
        region_name=answer["region"],
        aws_access_key_id=answer["access_key_id"],
        aws_secret_access_key=answer["secret_access_key"],
    )
    s3.upload_file(
        path,
        bucket,
        object_key,
        Config=TransferConfig(multipart_threshold=PART, multipart_chunksize=PART),
    )
    head = s3.head_object(Bucket=bucket, Key=object_key)
    # A multipart object's ETag ends in "-<number of parts>".
    etag = head["ETag"].strip('"')
    parts = int(etag.rsplit("-", 1)[1]) if "-" in etag else 1
    print(json.dumps({"bucket": bucket, "key": object_key, "size": head["ContentLength"], "parts": parts}))


if __name__ == "__main__":
    main(sys.argv)
