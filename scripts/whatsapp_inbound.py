#!/usr/bin/env python3
"""Posts a WhatsApp Cloud API notification to a local stack, signed as Meta
signs them (X-Hub-Signature-256: HMAC-SHA256 of the exact body with the app
secret), with Meta's escaping of non-ASCII text.

  scripts/whatsapp_inbound.py text "Vocês entregam hoje?" [--from 5511912345678]
  scripts/whatsapp_inbound.py status wamid.XYZ read [--at 1795521600]
  (options --url, --secret, --number, --from, --name, --at after the subcommand)

Defaults match `make dev` (nuvem-local --fake-graph): the API on
127.0.0.1:3000, app secret `dev-app-secret`, number 106540352242922.
Prints nuvem's answer; exits non-zero unless it is a 200.
"""

import argparse
import hashlib
import hmac
import json
import sys
import time
import urllib.error
import urllib.request
import uuid


def notification(args, value):
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "5511987654321", "phone_number_id": args.number},
        **value,
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}],
    }


def text_message(args):
    wamid = args.wamid or f"wamid.dev{uuid.uuid4().hex}"
    message = {
        "from": args.sender,
        "id": wamid,
        "timestamp": str(args.at or int(time.time())),
        "type": "text",
        "text": {"body": args.body},
    }
    contact = {"profile": {"name": args.name}, "wa_id": args.sender}
    return notification(args, {"contacts": [contact], "messages": [message]})


def status_update(args):
    status = {
        "id": args.wamid_of_status,
        "status": args.status,
        "timestamp": str(args.at or int(time.time())),
        "recipient_id": args.sender,
    }
    if args.status == "failed":
        status["errors"] = [{"code": 131047, "title": "Re-engagement message",
                             "message": "Re-engagement message"}]
    return notification(args, {"statuses": [status]})


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # Options go before or after the subcommand.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default="http://127.0.0.1:3000/v1/whatsapp/webhook")
    common.add_argument("--secret", default="dev-app-secret", help="the Meta app secret")
    common.add_argument("--number", default="106540352242922", help="phone_number_id it is sent to")
    common.add_argument("--from", dest="sender", default="5511912345678", help="the customer's wa_id")
    common.add_argument("--name", default="Ana")
    common.add_argument("--at", type=int, help="Unix seconds (default: now)")
    sub = p.add_subparsers(dest="kind", required=True)
    t = sub.add_parser("text", parents=[common], help="a customer's text message")
    t.add_argument("body")
    t.add_argument("--wamid", help="default: a new one")
    s = sub.add_parser("status", parents=[common], help="a status of a message we sent")
    s.add_argument("wamid_of_status")
    s.add_argument("status", choices=["sent", "delivered", "read", "played", "failed"])
    args = p.parse_args()

    payload = text_message(args) if args.kind == "text" else status_update(args)
    # Meta's form: ASCII with \\uXXXX escapes and escaped slashes. The
    # signature is over these bytes, exactly.
    body = json.dumps(payload, ensure_ascii=True, separators=(",", ":")).replace("/", "\\/").encode()
    signature = "sha256=" + hmac.new(args.secret.encode(), body, hashlib.sha256).hexdigest()
    req = urllib.request.Request(args.url, data=body, method="POST", headers={
        "content-type": "application/json",
        "x-hub-signature-256": signature,
        "user-agent": "facebookexternalua",
    })
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            print(resp.status, resp.read().decode())
    except urllib.error.HTTPError as e:
        print(e.code, e.read().decode(), file=sys.stderr)
        sys.exit(1)
    if args.kind == "text":
        print("wamid:", payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"])


if __name__ == "__main__":
    main()
