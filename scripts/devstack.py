"""A `make dev` stack for scripts: brought up on free ports with its own
emulator and stack name, and what the scripts do with it as a client
(signed WhatsApp notifications, a webhook receiver, keys, the activation
email). Used by `schemathesis_run.py` and `load.py`."""

import contextlib
import hashlib
import hmac
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP_SECRET = "dev-app-secret"
PHONE_NUMBER_ID = "106540352242922"
# How often a condition is polled, and how many polls before giving up: a
# cap on polls, generous for a busy machine, not a wall-clock deadline.
POLL_SECONDS = 0.5
MAX_POLLS = 1200
RECEIVED = {}
RECEIVED_LOCK = threading.Lock()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, condition):
    for _ in range(MAX_POLLS):
        value = condition()
        if value:
            return value
        time.sleep(POLL_SECONDS)
    sys.exit(f"devstack: gave up waiting for {what}")


class Api:
    def __init__(self, base):
        self.base = base

    def call(self, method, path, body=None, key=None, expect=None, raw=None, headers=None):
        """The answer's JSON; exits unless its status is `expect` (if given)."""
        status, answer = self.call_status(method, path, body, key, raw, headers)
        if expect is not None and status != expect:
            sys.exit(f"devstack: {method} {path} answered {status}: {answer}")
        return answer

    def call_status(self, method, path, body=None, key=None, raw=None, headers=None):
        """(status, the answer's JSON or None)."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(self.base + path, method=method, data=data)
        if data is not None and raw is None:
            req.add_header("content-type", "application/json")
        for name, value in (headers or {}).items():
            req.add_header(name, value)
        if key:
            req.add_header("authorization", "Bearer " + key)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                status, text = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read()
        try:
            return status, (json.loads(text) if text else None)
        except ValueError:
            return status, text.decode(errors="replace")


class Receiver(http.server.BaseHTTPRequestHandler):
    """A webhook receiver that accepts every delivery (their `webhook-id`
    headers are kept in RECEIVED, by path)."""

    def do_POST(self):  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("content-length", 0)))
        with RECEIVED_LOCK:
            RECEIVED.setdefault(self.path, set()).add(self.headers.get("webhook-id"))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def start_receiver():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/hooks/nuvem"


@contextlib.contextmanager
def dev_stack(log_path, stack, make_vars=()):
    ports = {name: free_port() for name in ("EMULATOR", "API", "GRAPH", "CHAT", "RPA")}
    args = [f"{name}_PORT={port}" for name, port in ports.items()] + [f"STACK={stack}", *make_vars]
    log = open(log_path, "w")
    proc = subprocess.Popen(
        ["make", "-s", "dev", *args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        def ready():
            if proc.poll() is not None:
                sys.exit(f"devstack: make dev exited ({proc.returncode}); see {log_path}")
            return "nuvem-local ready" in Path(log_path).read_text(errors="replace")

        wait_for("make dev", ready)
        yield ports
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def admin_key(emulator, stack):
    env = dict(
        os.environ, AWS_ENDPOINT_URL=emulator, AWS_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local",
    )
    out = subprocess.check_output(
        [str(ROOT / "target/debug/nuvem-admin"), "create-admin-key", "--table", f"{stack}-Table"],
        env=env, text=True,
    )
    return re.search(r"\S+\.nvm_sk_\S+", out).group(0)


def activation_token(emulator, email):
    def token():
        with urllib.request.urlopen(emulator + "/moto-api/data.json", timeout=60) as r:
            state = json.load(r)
        for message in state.get("ses", {}).get("Message", []):
            if email in json.dumps(message.get("destinations", {})):
                found = re.findall(r"token=(nvm_at_[A-Za-z0-9_]+)", message.get("body", ""))
                if found:
                    return found[0]
        return None

    return wait_for(f"the activation email to {email}", token)


def onboard(api, emulator, admin, name, document, email, licenses=1):
    """An account as a company gets one: signup, the admin's approval, the
    emailed activation token; its first owner key's credential."""
    account = api.call("POST", "/v1/signup", {
        "organization_name": name, "document": document,
        "phone": "(11) 98765-4321", "email": email, "imperius_licenses": licenses,
    }, expect=201)
    api.call("POST", f"/v1/admin/accounts/{account['id']}/approve",
             {"quota_gb": 5, "imperius_licenses": licenses}, admin, expect=200)
    return api.call("POST", "/v1/activate", {"token": activation_token(emulator, email)},
                    expect=201)["credential"]


def signed_inbound(api, text, sender="5511912345678", name="Ana"):
    body = json.dumps({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "5511987654321", "phone_number_id": PHONE_NUMBER_ID},
            "contacts": [{"profile": {"name": name}, "wa_id": sender}],
            "messages": [{"from": sender, "id": f"wamid.dev{time.time_ns()}",
                          "timestamp": str(int(time.time())), "type": "text", "text": {"body": text}}],
        }}]}],
    }).encode()
    signature = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    api.call("POST", "/v1/whatsapp/webhook", raw=body, expect=200,
             headers={"content-type": "application/json", "x-hub-signature-256": signature})
