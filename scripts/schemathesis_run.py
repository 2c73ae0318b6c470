#!/usr/bin/env python3
"""schemathesis against `make dev`, from `openapi.yaml`, with a key of each role.

  scripts/schemathesis_run.py [--examples N] [--report-dir DIR]

Brings `make dev` up on free ports (its own stack name, its own emulator),
onboards an account the way a company does (signup, admin approval, the
emailed activation token), mints an operator and an approver key, and seeds
one of everything (bucket, storage key, webhook endpoint with a receiver on
127.0.0.1, event, WhatsApp store with a number and a conversation, carrier,
client, process with an execution, schedule) so that schemathesis reaches the
operations' real logic and not only their 404s.

Then one schemathesis run per role (admin, owner, operator, approver), each
over the operations that role may call (`x-nuvem-roles`; the public ones go
with the owner's run). Every check of schemathesis is on, but for one
setting: a schema-valid request may still be refused with 422, since some
rules are beyond what a JSON Schema says (a CNPJ's check digits, an id that
must exist, a date that must be in the future); it must never be a 400, 405
or 415. Operations that delete get no seeded id (they would remove what the
others test); they are fuzzed with generated ids.

Prints the figures for the README (cases, answers by status, documented
statuses reached) and exits non-zero if any check failed.
"""

import argparse
import collections
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from devstack import (
    PHONE_NUMBER_ID, ROOT, Api, admin_key, dev_stack, onboard, signed_inbound,
    start_receiver, wait_for,
)

SPEC = ROOT / "openapi.yaml"
SCHEMATHESIS = ROOT / ".venv" / "schemathesis" / "bin" / "schemathesis"
STACK = "schema"


def seed(api, emulator):
    """Onboards an account and creates one of each resource; returns the keys
    by role and the path parameters by path prefix."""
    admin = admin_key(emulator, STACK)
    spare_admin = admin_key(emulator, STACK)
    owner = onboard(api, emulator, admin, "Schemathesis Ltda", "11.222.333/0001-81",
                    "schemathesis@example.com", licenses=2)
    # A second account, pending, for the admin's review operations.
    pending = api.call("POST", "/v1/signup", {
        "organization_name": "Oficina do João", "document": "123.456.789-09",
        "phone": "+55 31 3222-1100", "email": "joao@example.com", "imperius_licenses": 1,
    }, expect=201)
    keys = {"admin": admin, "owner": owner}
    for role in ("operator", "approver"):
        keys[role] = api.call("POST", "/v1/keys", {"name": role, "role": role}, owner,
                              expect=201)["credential"]
    spare = api.call("POST", "/v1/keys", {"name": "spare", "role": "operator"}, owner, expect=201)

    bucket = api.call("POST", "/v1/buckets", {"name": "backups-loja"}, owner, expect=201)
    storage_key = api.call("POST", "/v1/storage-keys", {"name": "Conector"}, owner, expect=201)
    webhook = api.call("POST", "/v1/webhooks", {
        "url": start_receiver(), "event_types": ["custom.order.paid"],
    }, owner, expect=201)
    event = api.call("POST", "/v1/events", {
        "type": "custom.order.paid", "data": {"order_id": "PED-1042"},
    }, owner, expect=202)
    store = api.call("POST", "/v1/whatsapp/stores", {
        "name": "Cantina da Nonna", "store_type": "restaurante", "bot_name": "Giulia",
        "base_prompt": "Você atende os clientes da Cantina da Nonna.",
    }, owner, expect=201)
    api.call("PUT", f"/v1/whatsapp/stores/{store['id']}/numbers/1", {
        "phone_number_id": PHONE_NUMBER_ID, "waba_id": "102290129340398",
        "display_phone_number": "+55 11 98765-4321", "access_token": "EAAGschemathesis",
    }, owner, expect=200)
    signed_inbound(api, "Vocês entregam hoje?")
    conversation = wait_for("the WhatsApp conversation", lambda: (api.call(
        "GET", f"/v1/whatsapp/stores/{store['id']}/conversations", key=owner)["items"] or [None])[0])
    api.call("POST", "/v1/rpa/carriers", {"code": "VIVO", "name": "Vivo Empresas"}, owner, expect=201)
    client = api.call("POST", "/v1/rpa/clients", {
        "legal_name": "Padaria Pão Quente Ltda", "cnpj": "11.222.333/0001-81", "carrier": "VIVO",
        "portal_login": "financeiro@paoquente.com.br", "portal_password": "s3nh@-do-portal",
    }, owner, expect=201)
    process = api.call("POST", "/v1/rpa/processes", {"client_id": client["id"], "month": "2026-11"},
                       owner, expect=201)
    execution = api.call("POST", f"/v1/rpa/processes/{process['id']}/download", key=owner,
                         expect=202)
    schedule = api.call("POST", "/v1/rpa/schedules", {
        "name": "Processos do mês", "cron": "0 6 1 * *", "type": "create_monthly_processes",
        "parameters": {"carriers": ["VIVO"], "month_offset": -1},
    }, owner, expect=201)

    params = {
        "/v1/keys/": {"id": spare["key"]["id"]},
        "/v1/buckets/": {"name": bucket["name"]},
        "/v1/storage-keys/": {"id": storage_key["storage_key"]["id"]},
        "/v1/webhooks/": {"id": webhook["webhook"]["id"]},
        "/v1/events/": {"id": event["id"]},
        "/v1/whatsapp/stores/": {"id": store["id"], "slot": 1,
                                 "conversation_id": conversation["id"]},
        "/v1/admin/accounts/": {"id": pending["id"]},
        "/v1/rpa/carriers/": {"code": "VIVO"},
        "/v1/rpa/clients/": {"id": client["id"]},
        "/v1/rpa/processes/": {"id": process["id"], "execution_id": execution["id"]},
        "/v1/rpa/schedules/": {"id": schedule["id"]},
    }
    admin_params = {"/v1/keys/": {"id": spare_admin.split(".")[0]}}
    return keys, params, admin_params


def operations(spec):
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield method.upper(), path, op


def config(spec, role, key, params):
    """A schemathesis.toml for one role: its operations, its key, the seeded ids."""
    lines = [
        "[checks.positive_data_acceptance]",
        # 422: a rule beyond the schema (check digits, existing ids, future dates).
        'expected-statuses = ["2xx", "3xx", 401, 403, 404, 409, 422, 429]',
        "",
    ]
    for method, path, op in operations(spec):
        roles = op.get("x-nuvem-roles", [])
        if not (role in roles or (not roles and role == "owner")):
            continue
        settings = []
        if roles:
            settings.append(f"headers = {{ Authorization = {json.dumps('Bearer ' + key)} }}")
        chosen = {}
        if method != "DELETE" or path.startswith("/v1/keys/"):
            for prefix, values in {**params["*"], **params.get(role, {})}.items():
                if path.startswith(prefix):
                    chosen = {n: v for n, v in values.items() if "{" + n + "}" in path}
        if chosen:
            inline = ", ".join(f"{json.dumps(n)} = {json.dumps(v)}" for n, v in chosen.items())
            settings.append(f"parameters = {{ {inline} }}")
        if settings:
            name = json.dumps(f"{method} {path}")
            lines += ["[[operations]]", f"include-name = {name}", *settings, ""]
    return "\n".join(lines)


def included(spec, role):
    for method, path, op in operations(spec):
        roles = op.get("x-nuvem-roles", [])
        if role in roles or (not roles and role == "owner"):
            yield f"{method} {path}"


def figures(report_dirs, spec):
    documented = {
        f"{m} {p}": {str(s) for s in op["responses"]} for m, p, op in operations(spec)
    }
    seen = collections.defaultdict(collections.Counter)
    for directory in report_dirs:
        for report in Path(directory).glob("*.ndjson"):
            for line in report.open():
                event = json.loads(line)
                finished = event.get("ScenarioFinished")
                if not finished:
                    continue
                label = finished["recorder"]["label"]
                for interaction in finished["recorder"].get("interactions", {}).values():
                    response = interaction.get("response")
                    if response:
                        seen[label][str(response["status_code"])] += 1
    statuses = collections.Counter()
    for counter in seen.values():
        statuses.update(counter)
    reached = {(op, s) for op, counter in seen.items() for s in counter if s in documented.get(op, ())}
    total = sum(len(v) for v in documented.values())
    server = sum(len(v & {"500", "503"}) for v in documented.values())
    print("\nschemathesis figures")
    print(f"  requests: {sum(statuses.values())} over {len(seen)} operations")
    print("  answers:  " + ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())))
    print(f"  documented statuses reached: {len(reached)} of {total} "
          f"({total - server} without 500/503, which a healthy stack must not answer)")
    missing = sorted(f"{op} {s}" for op, ss in documented.items() for s in ss
                     if s not in ("500", "503") and (op, s) not in reached)
    print(f"  not reached ({len(missing)}): " + "; ".join(missing))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10,
                        help="schemathesis --max-examples per operation and phase")
    parser.add_argument("--report-dir", default=None)
    args = parser.parse_args()
    spec = yaml.safe_load(SPEC.read_text())
    work = Path(args.report_dir or tempfile.mkdtemp(prefix="schemathesis."))
    work.mkdir(parents=True, exist_ok=True)
    failed = []
    with dev_stack(work / "make-dev.log", STACK) as ports:
        api = Api(f"http://127.0.0.1:{ports['API']}")
        emulator = f"http://127.0.0.1:{ports['EMULATOR']}"
        keys, params, admin_params = seed(api, emulator)
        all_params = {"*": params, "admin": admin_params}
        dirs = []
        for role in ("owner", "operator", "approver", "admin"):
            cfg = work / f"{role}.toml"
            cfg.write_text(config(spec, role, keys[role], all_params))
            reports = work / f"reports-{role}"
            dirs.append(reports)
            command = [
                str(SCHEMATHESIS), "--config-file", str(cfg), "run", str(SPEC),
                "--url", api.base, "--checks", "all",
                "--phases", "examples,coverage,fuzzing",
                "--max-examples", str(args.examples),
                "--seed", "20261130", "--workers", "1", "--no-color",
                "--report", "ndjson", "--report-dir", str(reports),
                *[arg for name in included(spec, role) for arg in ("--include-name", name)],
            ]
            print(f"schemathesis as {role}: {len(list(included(spec, role)))} operations", flush=True)
            with open(work / f"{role}.log", "w") as log:
                code = subprocess.call(command, cwd=work, stdout=log, stderr=subprocess.STDOUT)
            summary = (work / f"{role}.log").read_text(errors="replace")
            tail = summary[summary.rfind("SUMMARY"):] if "SUMMARY" in summary else summary[-3000:]
            print(tail)
            if code != 0:
                failed.append(role)
                print(summary[:summary.rfind("SUMMARY")][-20000:])
        figures(dirs, spec)
    if failed:
        sys.exit(f"schemathesis_run: failures in the runs of {', '.join(failed)} (logs in {work})")
    print(f"schemathesis_run: no failure (logs in {work})")


if __name__ == "__main__":
    main()
