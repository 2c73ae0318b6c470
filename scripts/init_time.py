#!/usr/bin/env python3
"""Cold-start init time of Lambda function binaries, measured as Lambda does.

For each binary: start it with a minimal Lambda Runtime API on 127.0.0.1,
and time from process start to its first `GET /runtime/invocation/next` —
the moment it has built its configuration and SDK clients and is ready for
its first event. Also reads the process's peak RSS (VmHWM) at that moment.
Each binary is started RUNS times; the median and the worst are reported.

usage: init_time.py [--runs N] BINARY...
"""
import argparse
import http.server
import os
import socketserver
import statistics
import subprocess
import sys
import threading
import time

READY = threading.Event()
READY_AT = [0.0]


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


def measure(binary, port, runs):
    env = {
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
        "S3_EVENTS_QUEUE_ARN": "arn:aws:sqs:us-east-1:123456789012:bench-S3EventsQueue",
        "DELIVERIES_QUEUE_URL": "http://127.0.0.1:9/123456789012/bench-DeliveriesQueue",
        "SECRETS_KEY_ID": "alias/bench-SecretsKey",
        "RUST_LOG": "info",
    }
    inits, rss = [], []
    for _ in range(runs):
        READY.clear()
        start = time.perf_counter()
        proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not READY.wait(10):
            proc.kill()
            sys.exit(f"{binary}: never asked for an event")
        inits.append((READY_AT[0] - start) * 1000)
        rss.append(peak_rss_kb(proc.pid) / 1024)
        proc.kill()
        proc.wait()
    return inits, rss


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("binaries", nargs="+")
    args = parser.parse_args()
    server = Server(("127.0.0.1", 0), RuntimeApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    print(f"| function | size (stripped) | init median | init worst | peak RSS |")
    print(f"| --- | --- | --- | --- | --- |")
    for binary in args.binaries:
        inits, rss = measure(binary, port, args.runs)
        size = os.path.getsize(binary) / 1e6
        print(f"| {os.path.basename(binary)} | {size:.1f} MB | {statistics.median(inits):.1f} ms "
              f"| {max(inits):.1f} ms | {max(rss):.1f} MB |")
    server.shutdown()


if __name__ == "__main__":
    main()
