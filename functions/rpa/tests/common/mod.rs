//! The `rpa` function's test world: an emulated stack, two accounts, and
//! calls made as the authorizer labels them.
#![allow(dead_code)]

use chrono::Utc;
use nuvem_aws::Core;
use nuvem_aws::http::Request;
use nuvem_aws::invoices::InvoiceLinks;
use nuvem_aws::rpa_jobs::RpaJobQueue;
use nuvem_aws::store::ProcessRecord;
use nuvem_domain::rpa::process::{Invoice, ProcessStatus, parse_process_id};
use nuvem_testkit::fixtures::{
    as_principal, http_event, reply, with_bytes, with_json, with_path_param, with_query,
    with_route, without_body,
};
use nuvem_testkit::inspect::scan_all;
use nuvem_testkit::{TestStack, tenants};
use serde_json::{Value, json};

pub const CNPJ: &str = "11.222.333/0001-81";
pub const OTHER_CNPJ: &str = "11.444.777/0001-61";
pub const PASSWORD: &str = "s3nh@-do-portal";

pub struct World {
    pub t: TestStack,
    pub deps: rpa::Deps,
    pub account: String,
    pub other: String,
}

pub async fn world() -> World {
    let t = TestStack::new("rpa").await;
    let env = t.env("Rpa");
    let core = Core::from_lookup(&t.sdk, &env).unwrap();
    let account = tenants::active_account(&core.store, 1_000, 0).await.id;
    let other = tenants::active_account(&core.store, 1_000, 0).await.id;
    let deps = rpa::Deps {
        core,
        sealer: t.sealer(),
        queue: RpaJobQueue::new(&t.sdk, env("RPA_JOBS_QUEUE_URL").unwrap()),
        invoices: InvoiceLinks::from_lookup(&t.sdk, &env).unwrap(),
    };
    World {
        t,
        deps,
        account,
        other,
    }
}

/// What a call sends besides its route.
#[derive(Default)]
pub struct Call<'a> {
    pub params: &'a [(&'a str, &'a str)],
    pub query: &'a [(&'a str, &'a str)],
    pub json: Option<Value>,
    pub csv: Option<(&'a str, Vec<u8>)>,
    pub accept: Option<&'a str>,
}

impl World {
    pub async fn call_as(
        &self,
        account: &str,
        role: &str,
        route: &str,
        call: Call<'_>,
    ) -> (u16, Value) {
        let mut req: Request =
            without_body(with_route(http_event("rpa/create-client.json"), route));
        for (name, value) in call.params {
            req = with_path_param(req, name, value);
        }
        if !call.query.is_empty() {
            req = with_query(req, call.query);
        }
        if let Some(body) = call.json {
            req = with_json(req, &body);
        }
        if let Some((content_type, bytes)) = call.csv {
            req = with_bytes(req, content_type, bytes);
        }
        if let Some(accept) = call.accept {
            req.headers_mut()
                .insert("accept", accept.parse().expect("an Accept header"));
        }
        let req = as_principal(req, account, "key_01jd0000000000000000000001", role);
        // Text answers (CSV) come back as a JSON string.
        let (status, _, body) = reply(&rpa::handle(&self.deps, req).await);
        (status, body)
    }

    /// Every id a listing shows as `role`, read two at a time through its
    /// cursors.
    pub async fn all_pages(&self, role: &str, route: &str, query: &[(&str, &str)]) -> Vec<String> {
        let mut got = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut q = query.to_vec();
            q.push(("limit", "2"));
            if let Some(c) = &cursor {
                q.push(("cursor", c));
            }
            let call = Call {
                query: &q,
                ..Call::default()
            };
            let (status, page) = self.call_as(&self.account, role, route, call).await;
            assert_eq!(status, 200, "{page}");
            got.extend(page["items"].as_array().unwrap().iter().map(id_of));
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return got,
            }
        }
    }

    pub async fn owner(&self, route: &str, call: Call<'_>) -> (u16, Value) {
        self.call_as(&self.account, "owner", route, call).await
    }

    pub async fn carrier(&self, account: &str, code: &str) {
        let (status, body) = self
            .call_as(
                account,
                "owner",
                "POST /v1/rpa/carriers",
                Call {
                    json: Some(json!({"code": code, "name": code})),
                    ..Call::default()
                },
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }

    pub async fn client(&self, body: Value) -> (u16, Value) {
        self.owner(
            "POST /v1/rpa/clients",
            Call {
                json: Some(body),
                ..Call::default()
            },
        )
        .await
    }

    pub async fn import(&self, bytes: Vec<u8>) -> (u16, Value) {
        self.owner(
            "POST /v1/rpa/clients/import",
            Call {
                csv: Some(("text/csv", bytes)),
                ..Call::default()
            },
        )
        .await
    }

    /// The stored client items of the account.
    pub async fn stored_clients(&self, account: &str) -> Vec<nuvem_aws::store::Item> {
        let pk = format!("ACCOUNT#{account}");
        scan_all(&self.t.db, self.t.table())
            .await
            .into_iter()
            .filter(|i| {
                i["pk"].as_s().unwrap() == &pk && i["sk"].as_s().unwrap().starts_with("RPACLIENT#")
            })
            .collect()
    }
}

pub fn client_body(unit: &str) -> Value {
    json!({
        "legal_name": "Padaria Pão Quente Ltda",
        "cnpj": CNPJ,
        "carrier": "vivo",
        "unit": unit,
        "service": "Móvel",
        "portal_login": "financeiro@paoquente.com.br",
        "portal_password": PASSWORD,
    })
}

pub fn id_of(body: &Value) -> String {
    body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id: {body}"))
        .to_owned()
}

impl World {
    pub async fn new_client(&self, unit: &str, carrier: &str) -> String {
        let mut body = client_body(unit);
        body["carrier"] = json!(carrier);
        let (status, client) = self.client(body).await;
        assert_eq!(status, 201, "{client}");
        id_of(&client)
    }

    pub async fn new_process(&self, client_id: &str, month: &str) -> (u16, Value) {
        self.call_as(
            &self.account,
            "operator",
            "POST /v1/rpa/processes",
            Call {
                json: Some(json!({"client_id": client_id, "month": month})),
                ..Call::default()
            },
        )
        .await
    }

    /// The process as the store has it.
    pub async fn stored(&self, id: &str) -> ProcessRecord {
        let (client_id, month) = parse_process_id(id).unwrap();
        self.deps
            .core
            .store
            .get_process(&self.account, &client_id, month)
            .await
            .unwrap()
            .unwrap()
    }

    /// What a completed download does to a process (the worker's part).
    pub async fn receive_invoice(&self, id: &str, amount_cents: i64) {
        let current = self.stored(id).await;
        let next = ProcessRecord {
            status: ProcessStatus::AwaitingApproval,
            invoice: Some(Invoice {
                s3_key: format!(
                    "{}/{}/{}.pdf",
                    self.account, current.client_id, current.month
                ),
                file_name: "fatura.pdf".into(),
                due_date: None,
                amount_cents: Some(amount_cents),
                access_key: None,
                received_at: Utc::now(),
            }),
            version: current.version + 1,
            ..current.clone()
        };
        assert!(
            self.deps
                .core
                .store
                .update_process(&current, &next, None, None)
                .await
                .unwrap()
        );
    }

    pub async fn approve_as(&self, role: &str, id: &str) -> (u16, Value) {
        let params = [("id", id)];
        self.call_as(
            &self.account,
            role,
            "POST /v1/rpa/processes/{id}/approve",
            Call {
                params: &params,
                ..Call::default()
            },
        )
        .await
    }

    pub async fn list(&self, query: &[(&str, &str)]) -> Vec<String> {
        self.all_pages("approver", "GET /v1/rpa/processes", query)
            .await
    }
}
