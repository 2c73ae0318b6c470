#!/usr/bin/env python3
"""Cold-start init time of Lambda function binaries, measured as Lambda does.

For each binary: start it with a minimal Lambda Runtime API on 127.0.0.1,
and time from process start to its first `GET /runtime/invocation/next` —
the moment it has built its configuration and SDK clients and is ready for
its first event. Also reads the process's peak RSS (VmHWM) at that moment.
Each binary is started RUNS times, the binaries taking turns so that the
machine's load drifts over all of them alike; the median and the worst are
reported, and with --floor each median as a multiple of the floor's (a bare
`lambda_runtime` hello, measured in the same run). It fails when a binary
is over the README's budgets: 8 MB stripped, 15 ms init median.

--check-no-cert-reads --ahead-of-requests starts them as provisioned
concurrency does, and fails if any does NOT read its roots at init (there
init delays no request, so clients are built in full; nuvem_aws::config::
init_ahead_of_requests).

--check-no-cert-reads starts each binary once with SSL_CERT_FILE and
SSL_CERT_DIR pointing at a FIFO and a folder holding one, and fails if any
opens them before asking for its first event: trust roots are for the first
connection, not for init (see nuvem_aws::config::FirstUseHttpClient).

usage: init_time.py [--runs N] [--floor HELLO] BINARY...
       init_time.py --check-no-cert-reads BINARY...
"""
import argparse
import errno
import http.server
import os
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time

READY = threading.Event()
READY_AT = [0.0]
# Generous: only a binary that hangs at init should ever reach it.
HANG_CAP_SECONDS = 120
# The README's budgets for every function: stripped size and init median.
SIZE_BUDGET_BYTES = 8_000_000
INIT_BUDGET_MS = 15.0


class RuntimeApi(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        if self.path.endswith("/runtime/invocation/next"):
            READY_AT[0] = time.perf_counter()
            READY.set()
            # Keep the long poll open, as Lambda does until an event arrives.
            time.sleep(5)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def peak_rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def lambda_env(binary, port):
    return {
        "PATH": os.environ.get("PATH", ""),
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
        "AWS_LAMBDA_FUNCTION_NAME": os.path.basename(binary),
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/bench",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "TABLE_NAME": "bench-Table",
        "EVENTS_QUEUE_URL": "http://127.0.0.1:9/123456789012/bench-EventsQueue",
        "MAIL_FROM": "nuvem@nuvem.example",
        "PUBLIC_BASE_URL": "https://app.nuvem.example",
        "BUCKET_PREFIX": "nuvem-t",
        "STORAGE_KEY_BOUNDARY_ARN": "arn:aws:iam::123456789012:policy/bench-StorageKeyBoundary",
        "S3_EVENTS_QUEUE_ARN": "arn:aws:sqs:us-east-1:123456789012:bench-S3EventsQueue",
        "DELIVERIES_QUEUE_URL": "http://127.0.0.1:9/123456789012/bench-DeliveriesQueue",
        "SECRETS_KEY_ID": "alias/bench-SecretsKey",
        "BOT_QUEUE_URL": "http://127.0.0.1:9/123456789012/bench-WhatsAppBotQueue",
        "CHAT_MODEL": "openai/gpt-4o-mini",
        "CHAT_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:bench-ChatApiSecret",
        "OUTBOUND_QUEUE_URL": "http://127.0.0.1:9/123456789012/bench-WhatsAppOutboundQueue",
        "WHATSAPP_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:bench-WhatsAppSecret",
        "RPA_API_URL": "http://127.0.0.1:9/rpa",
        "RPA_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:bench-RpaApiSecret",
        "RPA_JOBS_QUEUE_URL": "http://127.0.0.1:9/123456789012/bench-RpaJobsQueue",
        "INVOICES_BUCKET": "bench-invoicesbucket",
        "RUST_LOG": "info",
        "METRICS_NAMESPACE": "nuvem/bench",
    }


def start_once(binary, env):
    """Starts the binary; (init ms, peak RSS MB) once it asks for an event."""
    READY.clear()
    start = time.perf_counter()
    proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not READY.wait(HANG_CAP_SECONDS):
            sys.exit(f"{binary}: never asked for an event")
        return (READY_AT[0] - start) * 1000, peak_rss_kb(proc.pid) / 1024
    finally:
        proc.kill()
        proc.wait()


def fifo_has_reader(fifo):
    """True if some process has the FIFO open for reading."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as e:
        if e.errno == errno.ENXIO:
            return False
        raise
    os.close(fd)
    return True


def check_no_cert_reads(binaries, port, ahead=False):
    """Fails if a binary opens its trust roots before asking for an event.

    With `ahead`, started as provisioned concurrency starts it (init ahead of
    any request), it fails if a binary does not open them at init."""
    with tempfile.TemporaryDirectory() as tmp:
        cert_dir = os.path.join(tmp, "certs")
        os.mkdir(cert_dir)
        fifos = [os.path.join(tmp, "ca-bundle.crt"), os.path.join(cert_dir, "root.pem")]
        for fifo in fifos:
            os.mkfifo(fifo)
        failed = []
        for binary in binaries:
            env = lambda_env(binary, port)
            env.update({"SSL_CERT_FILE": fifos[0], "SSL_CERT_DIR": cert_dir})
            if ahead:
                env["AWS_LAMBDA_INITIALIZATION_TYPE"] = "provisioned-concurrency"
            READY.clear()
            proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            # A binary that opens a FIFO blocks there; one that does not asks
            # for its event. Whichever happens first decides.
            verdict = None
            deadline = time.monotonic() + HANG_CAP_SECONDS
            while verdict is None:
                if any(fifo_has_reader(f) for f in fifos):
                    verdict = "opens its trust roots at init"
                elif READY.wait(0.05):
                    verdict = "ok" if not any(fifo_has_reader(f) for f in fifos) else \
                        "opens its trust roots at init"
                elif proc.poll() is not None:
                    verdict = f"exited with {proc.returncode} before asking for an event"
                elif time.monotonic() > deadline:
                    verdict = "neither asked for an event nor opened its roots"
            proc.kill()
            proc.wait()
            name = os.path.basename(binary)
            print(f"{name}: {verdict}")
            if verdict != ("opens its trust roots at init" if ahead else "ok"):
                failed.append(name)
        if failed and ahead:
            sys.exit(f"trust roots not read at an init ahead of requests: {', '.join(failed)}")
        if failed:
            sys.exit(f"trust roots read at init (or no init): {', '.join(failed)}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--floor", help="the bare lambda_runtime hello to compare with")
    parser.add_argument("--check-no-cert-reads", action="store_true")
    parser.add_argument("--ahead-of-requests", action="store_true",
                        help="with --check-no-cert-reads: as provisioned concurrency "
                             "starts them, and expect the reads at init")
    parser.add_argument("binaries", nargs="+")
    args = parser.parse_args()
    server = Server(("127.0.0.1", 0), RuntimeApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    if args.check_no_cert_reads:
        check_no_cert_reads(args.binaries, port, ahead=args.ahead_of_requests)
        server.shutdown()
        return
    binaries = ([args.floor] if args.floor else []) + args.binaries
    inits = {b: [] for b in binaries}
    rss = {b: [] for b in binaries}
    for _ in range(args.runs):
        for binary in binaries:
            init, peak = start_once(binary, lambda_env(binary, port))
            inits[binary].append(init)
            rss[binary].append(peak)
    floor = statistics.median(inits[args.floor]) if args.floor else None
    ratio_head = " | init ÷ hello" if floor else ""
    print(f"| function | size (stripped) | init median | init worst | peak RSS{ratio_head} |")
    print("| --- | --- | --- | --- | ---" + (" | ---" if floor else "") + " |")
    for binary in binaries:
        size = os.path.getsize(binary) / 1e6
        median = statistics.median(inits[binary])
        ratio = f" | {median / floor:.2f}×" if floor else ""
        print(f"| {os.path.basename(binary)} | {size:.1f} MB | {median:.1f} ms "
              f"| {max(inits[binary]):.1f} ms | {max(rss[binary]):.1f} MB{ratio} |")
    server.shutdown()
    over = [f"{os.path.basename(b)} ({os.path.getsize(b) / 1e6:.2f} MB, "
            f"{statistics.median(inits[b]):.1f} ms)"
            for b in binaries
            if os.path.getsize(b) > SIZE_BUDGET_BYTES
            or statistics.median(inits[b]) > INIT_BUDGET_MS]
    if over:
        sys.exit(f"over the budgets (8 MB stripped, {INIT_BUDGET_MS:g} ms init): "
                 + ", ".join(over))


if __name__ == "__main__":
    main()
