//! The `rpa` routes of carriers and clients against the emulator: one client
//! per (CNPJ, carrier, unit, service) however it is written, passwords
//! sealed and never shown, roles, tenant isolation, and CSV imports whose
//! rows are each applied whole or not at all.

mod common;

use std::collections::BTreeSet;

use common::{CNPJ, Call, OTHER_CNPJ, PASSWORD, client_body, id_of, world};
use nuvem_aws::secrets::SealContext;
use serde_json::{Value, json};

#[tokio::test]
async fn carriers_are_kept_by_code_and_not_deleted_while_clients_name_them() {
    let w = world().await;
    let (status, created) = w
        .owner(
            "POST /v1/rpa/carriers",
            Call {
                json: Some(json!({
                    "code": "vivo", "name": "Vivo Empresas",
                    "portal_url": "https://mve.vivo.com.br",
                    "rpa_settings": {"perfil": "empresas", "big": 1e300}
                })),
                ..Call::default()
            },
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["code"], "VIVO");
    assert_eq!(created["rpa_settings"]["big"], 1e300);
    assert_eq!(
        created["created_by"]["key_id"],
        "key_01jd0000000000000000000001"
    );
    assert_eq!(
        created["created_by"]["key_name"],
        "key_01jd0000000000000000000001 (owner)"
    );
    let again = Call {
        json: Some(json!({"code": "VIVO", "name": "Outra"})),
        ..Call::default()
    };
    assert_eq!(w.owner("POST /v1/rpa/carriers", again).await.0, 409);
    let reserved = Call {
        json: Some(json!({"code": "sat", "name": "SAT"})),
        ..Call::default()
    };
    let (status, body) = w.owner("POST /v1/rpa/carriers", reserved).await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (422, Some("code"))
    );

    let vivo = [("code", "vivo")];
    let (status, read) = w
        .call_as(
            &w.account,
            "approver",
            "GET /v1/rpa/carriers/{code}",
            Call {
                params: &vivo,
                ..Call::default()
            },
        )
        .await;
    assert_eq!((status, &read), (200, &created));
    let (status, changed) = w
        .owner(
            "PATCH /v1/rpa/carriers/{code}",
            Call {
                params: &vivo,
                json: Some(json!({"active": false, "portal_url": null, "max_attempts": 5})),
                ..Call::default()
            },
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(
        (changed["active"].clone(), changed["portal_url"].clone()),
        (json!(false), Value::Null)
    );
    assert_eq!(changed["max_attempts"], 5);
    assert_eq!(changed["rpa_settings"], created["rpa_settings"]);

    let (status, client) = w.client(client_body("Matriz")).await;
    assert_eq!(status, 201, "{client}");
    let (status, _) = w
        .owner(
            "DELETE /v1/rpa/carriers/{code}",
            Call {
                params: &vivo,
                ..Call::default()
            },
        )
        .await;
    assert_eq!(status, 409, "a client names it");
    let client_id = id_of(&client);
    let params = [("id", client_id.as_str())];
    assert_eq!(
        w.owner(
            "DELETE /v1/rpa/clients/{id}",
            Call {
                params: &params,
                ..Call::default()
            }
        )
        .await
        .0,
        204
    );
    assert_eq!(
        w.owner(
            "DELETE /v1/rpa/carriers/{code}",
            Call {
                params: &vivo,
                ..Call::default()
            }
        )
        .await
        .0,
        204
    );
    assert_eq!(
        w.owner(
            "GET /v1/rpa/carriers/{code}",
            Call {
                params: &vivo,
                ..Call::default()
            }
        )
        .await
        .0,
        404
    );
    assert_eq!(
        w.owner(
            "DELETE /v1/rpa/carriers/{code}",
            Call {
                params: &vivo,
                ..Call::default()
            }
        )
        .await
        .0,
        404
    );
    let bad = [("code", "não")];
    assert_eq!(
        w.owner(
            "GET /v1/rpa/carriers/{code}",
            Call {
                params: &bad,
                ..Call::default()
            }
        )
        .await
        .0,
        404
    );
}

#[tokio::test]
async fn a_client_exists_once_per_cnpj_carrier_unit_and_service() {
    let w = world().await;
    w.carrier(&w.account, "VIVO").await;
    w.carrier(&w.account, "OI").await;
    let (status, created) = w.client(client_body("Matriz")).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["cnpj"], "11222333000181");
    assert_eq!(created["carrier"], "VIVO");
    assert_eq!(created["sat_name"], "Padaria Pão Quente Ltda");
    assert_eq!(created["has_portal_password"], true);
    assert!(!created.to_string().contains(PASSWORD), "{created}");

    // The same client, however its unit and service are typed.
    let mut same = client_body("  MATRIZ ");
    same["service"] = json!("móvel");
    same["legal_name"] = json!("Outro nome");
    assert_eq!(w.client(same).await.0, 409);
    // Another unit, carrier or CNPJ is another client.
    assert_eq!(w.client(client_body("Filial Centro")).await.0, 201);
    let mut oi = client_body("Matriz");
    oi["carrier"] = json!("OI");
    assert_eq!(w.client(oi).await.0, 201);
    let mut no_carrier = client_body("Matriz");
    no_carrier["carrier"] = json!("CLARO");
    let (status, body) = w.client(no_carrier).await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (422, Some("carrier"))
    );
    let mut bad = client_body("Matriz");
    bad["cnpj"] = json!("11.222.333/0001-82");
    bad["cpf"] = json!("123");
    let (status, body) = w.client(bad).await;
    assert_eq!(status, 422);
    let fields: BTreeSet<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, BTreeSet::from(["cnpj", "cpf"]));
    assert_eq!(
        w.stored_clients(&w.account).await.len(),
        3,
        "refused requests stored nothing"
    );

    // Moving a client to another unit frees its old identity; moving it
    // onto a taken one is refused and changes nothing.
    let id = id_of(&created);
    let params = [("id", id.as_str())];
    let (status, moved) = w
        .owner(
            "PATCH /v1/rpa/clients/{id}",
            Call {
                params: &params,
                json: Some(json!({"unit": "Filial Norte"})),
                ..Call::default()
            },
        )
        .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(
        moved["has_portal_password"], true,
        "a patch keeps the password"
    );
    assert_eq!(
        w.client(client_body("Matriz")).await.0,
        201,
        "Matriz is free again"
    );
    let (status, _) = w
        .owner(
            "PATCH /v1/rpa/clients/{id}",
            Call {
                params: &params,
                json: Some(json!({"unit": "Filial Centro"})),
                ..Call::default()
            },
        )
        .await;
    assert_eq!(status, 409);
    let (_, read) = w
        .owner(
            "GET /v1/rpa/clients/{id}",
            Call {
                params: &params,
                ..Call::default()
            },
        )
        .await;
    assert_eq!(read["unit"], "Filial Norte");
    let (status, cleared) = w
        .owner(
            "PATCH /v1/rpa/clients/{id}",
            Call {
                params: &params,
                json: Some(json!({"portal_password": null})),
                ..Call::default()
            },
        )
        .await;
    assert_eq!(
        (status, cleared["has_portal_password"].clone()),
        (200, json!(false))
    );

    // Deleting a client frees its identity.
    assert_eq!(
        w.owner(
            "DELETE /v1/rpa/clients/{id}",
            Call {
                params: &params,
                ..Call::default()
            }
        )
        .await
        .0,
        204
    );
    assert_eq!(
        w.owner(
            "GET /v1/rpa/clients/{id}",
            Call {
                params: &params,
                ..Call::default()
            }
        )
        .await
        .0,
        404
    );
    assert_eq!(w.client(client_body("Filial Norte")).await.0, 201);
}

#[tokio::test]
async fn the_portal_password_is_sealed_for_its_client() {
    let w = world().await;
    w.carrier(&w.account, "VIVO").await;
    let (_, a) = w.client(client_body("Matriz")).await;
    let (_, b) = w.client(client_body("Filial")).await;
    let stored = w.stored_clients(&w.account).await;
    let sealed_of = |id: &str| {
        stored
            .iter()
            .find(|i| i["id"].as_s().unwrap() == id)
            .and_then(|i| i.get("sealed_password"))
            .map(|v| v.as_s().unwrap().clone())
            .expect("a sealed password")
    };
    for item in &stored {
        assert!(
            !format!("{item:?}").contains(PASSWORD),
            "the table holds no plaintext"
        );
    }
    let sealer = w.t.sealer();
    let (a, b) = (id_of(&a), id_of(&b));
    let opened = sealer
        .open(
            &sealed_of(&a),
            &SealContext::rpa_portal_password(&w.account, &a),
        )
        .await
        .unwrap();
    assert_eq!(&*opened, PASSWORD);
    assert!(
        sealer
            .open(
                &sealed_of(&a),
                &SealContext::rpa_portal_password(&w.account, &b)
            )
            .await
            .is_err(),
        "it opens for its own client only"
    );
}

#[tokio::test]
async fn listings_filter_and_page() {
    let w = world().await;
    w.carrier(&w.account, "VIVO").await;
    w.carrier(&w.account, "OI").await;
    let mut ids = Vec::new();
    for (i, carrier) in ["VIVO", "OI", "VIVO", "VIVO", "OI"].iter().enumerate() {
        let mut body = client_body(&format!("Unidade {i}"));
        body["carrier"] = json!(carrier);
        body["active"] = json!(i != 2);
        if i == 4 {
            body["cnpj"] = json!(OTHER_CNPJ);
        }
        let (status, c) = w.client(body).await;
        assert_eq!(status, 201, "{c}");
        ids.push(id_of(&c));
    }
    let list = |query: &'static [(&'static str, &'static str)]| {
        w.all_pages("operator", "GET /v1/rpa/clients", query)
    };
    assert_eq!(list(&[]).await, ids);
    assert_eq!(
        list(&[("carrier", "vivo")]).await,
        [ids[0].as_str(), &ids[2], &ids[3]]
    );
    assert_eq!(
        list(&[("carrier", "VIVO"), ("active", "true")]).await,
        [ids[0].as_str(), &ids[3]]
    );
    assert_eq!(list(&[("cnpj", "11444777000161")]).await, [ids[4].as_str()]);
    assert_eq!(list(&[("active", "false")]).await, [ids[2].as_str()]);
    for bad in [
        [("active", "sim")],
        [("cnpj", "123")],
        [("carrier", "S A T")],
        [("cursor", "bm9wZQ")],
    ] {
        let (status, _) = w
            .owner(
                "GET /v1/rpa/clients",
                Call {
                    query: &bad,
                    ..Call::default()
                },
            )
            .await;
        assert_eq!(status, 422, "{bad:?}");
    }
}

#[tokio::test]
async fn roles_and_accounts_are_kept_apart() {
    let w = world().await;
    w.carrier(&w.account, "VIVO").await;
    let (_, created) = w.client(client_body("Matriz")).await;
    let id = id_of(&created);
    let params = [("id", id.as_str())];
    for role in ["approver", "operator"] {
        let (status, _) = w
            .call_as(
                &w.account,
                role,
                "POST /v1/rpa/clients",
                Call {
                    json: Some(client_body("Filial")),
                    ..Call::default()
                },
            )
            .await;
        assert_eq!(status, 403, "{role} cannot create clients");
        let (status, _) = w
            .call_as(
                &w.account,
                role,
                "PATCH /v1/rpa/clients/{id}",
                Call {
                    params: &params,
                    json: Some(json!({"active": false})),
                    ..Call::default()
                },
            )
            .await;
        assert_eq!(status, 403);
        let (status, read) = w
            .call_as(
                &w.account,
                role,
                "GET /v1/rpa/clients/{id}",
                Call {
                    params: &params,
                    ..Call::default()
                },
            )
            .await;
        assert_eq!((status, &read), (200, &created));
    }
    // Another account sees no such client and no such carrier, and has
    // clients of its own with the same identity.
    let vivo = [("code", "VIVO")];
    for route in [
        "GET /v1/rpa/clients/{id}",
        "PATCH /v1/rpa/clients/{id}",
        "DELETE /v1/rpa/clients/{id}",
    ] {
        let json = route.starts_with("PATCH").then(|| json!({"active": false}));
        let (status, _) = w
            .call_as(
                &w.other,
                "owner",
                route,
                Call {
                    params: &params,
                    json,
                    ..Call::default()
                },
            )
            .await;
        assert_eq!(status, 404, "{route}");
    }
    let (status, _) = w
        .call_as(
            &w.other,
            "owner",
            "GET /v1/rpa/carriers/{code}",
            Call {
                params: &vivo,
                ..Call::default()
            },
        )
        .await;
    assert_eq!(status, 404);
    let (status, listed) = w
        .call_as(&w.other, "owner", "GET /v1/rpa/clients", Call::default())
        .await;
    assert_eq!((status, listed["items"].clone()), (200, json!([])));
    let (status, _) = w
        .call_as(
            &w.other,
            "owner",
            "POST /v1/rpa/clients",
            Call {
                json: Some(client_body("Matriz")),
                ..Call::default()
            },
        )
        .await;
    assert_eq!(status, 422, "the other account has no carrier VIVO");
    w.carrier(&w.other, "VIVO").await;
    let (status, _) = w
        .call_as(
            &w.other,
            "owner",
            "POST /v1/rpa/clients",
            Call {
                json: Some(client_body("Matriz")),
                ..Call::default()
            },
        )
        .await;
    assert_eq!(status, 201);
    let (_, read) = w
        .owner(
            "GET /v1/rpa/clients/{id}",
            Call {
                params: &params,
                ..Call::default()
            },
        )
        .await;
    assert_eq!(read, created, "untouched");
}

fn verdicts(report: &Value) -> Vec<(u64, String)> {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["result"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_import_applies_each_row_whole_or_not_at_all() {
    let w = world().await;
    w.carrier(&w.account, "VIVO").await;
    let (_, existing) = w.client(client_body("Matriz")).await;
    // Excel in Brazil: Windows-1252 and semicolons.
    let file = format!(
        "Razão Social;CNPJ;Operadora;Unidade;Serviço;Senha\r\n\
         Padaria Pão Quente Ltda;{CNPJ};VIVO;matriz;móvel;\r\n\
         Padaria Pão Quente Ltda;{CNPJ};VIVO;Filial Centro;Móvel;outra-senha\r\n\
         Padaria Pão Quente Ltda;{CNPJ};VIVO;Filial Centro;Móvel;\r\n\
         Açougue Boi Bom;{OTHER_CNPJ};CLARO;;;\r\n\
         Açougue Boi Bom;11.444.777/0001-62;VIVO;;;\r\n\
         Açougue Boi Bom;{OTHER_CNPJ};VIVO;;Fixo;\r\n"
    );
    let cp1252 = encoding_of(&file);
    let (status, report) = w.import(cp1252.clone()).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        verdicts(&report),
        expected(&[
            (2, "updated"),
            (3, "created"),
            (4, "refused"),
            (5, "refused"),
            (6, "refused"),
            (7, "created"),
        ])
    );
    assert_eq!(report["rows"][0]["client_id"], existing["id"]);
    let existing_id = id_of(&existing);
    let params = [("id", existing_id.as_str())];
    let (_, matriz) = w
        .owner(
            "GET /v1/rpa/clients/{id}",
            Call {
                params: &params,
                ..Call::default()
            },
        )
        .await;
    assert_eq!(matriz["unit"], "matriz", "the file's columns replace");
    assert_eq!(
        matriz["portal_login"], existing["portal_login"],
        "the others are kept"
    );
    assert_eq!(matriz["has_portal_password"], true);
    assert_eq!(
        report["rows"][2]["errors"][0]["field"], "row",
        "repeats line 3"
    );
    assert_eq!(report["rows"][3]["errors"][0]["field"], "carrier");
    assert_eq!(report["rows"][4]["errors"][0]["field"], "cnpj");
    assert_eq!(
        report["summary"],
        json!({"rows": 6, "created": 2, "updated": 1, "unchanged": 0, "refused": 3, "failed": 0})
    );
    assert_eq!(w.stored_clients(&w.account).await.len(), 3);
    let created = report["rows"][1]["client_id"].as_str().unwrap().to_owned();
    let params = [("id", created.as_str())];
    let (_, filial) = w
        .owner(
            "GET /v1/rpa/clients/{id}",
            Call {
                params: &params,
                ..Call::default()
            },
        )
        .await;
    assert_eq!(filial["legal_name"], "Padaria Pão Quente Ltda");
    assert_eq!(filial["has_portal_password"], true);

    // The same file again changes nothing; a changed row updates its client.
    let (_, again) = w.import(cp1252).await;
    // (A row with a password is written again: a sealed password cannot
    // be compared.)
    assert_eq!(
        (
            &again["summary"]["unchanged"],
            &again["summary"]["updated"],
            &again["summary"]["created"]
        ),
        (&json!(2), &json!(1), &json!(0)),
        "{again}"
    );
    let changed = format!(
        "legal_name,cnpj,carrier,unit,service,active\nPadaria Nova,{CNPJ},VIVO,Filial Centro,Móvel,não\n"
    );
    let (_, report) = w.import(changed.into_bytes()).await;
    assert_eq!(verdicts(&report), expected(&[(2, "updated")]));
    assert_eq!(report["rows"][0]["client_id"], created.as_str());
    let (_, filial) = w
        .owner(
            "GET /v1/rpa/clients/{id}",
            Call {
                params: &params,
                ..Call::default()
            },
        )
        .await;
    assert_eq!(
        (filial["legal_name"].as_str(), filial["active"].as_bool()),
        (Some("Padaria Nova"), Some(false))
    );
    assert_eq!(
        filial["has_portal_password"], true,
        "an empty password cell keeps it"
    );
    assert_eq!(w.stored_clients(&w.account).await.len(), 3);
}

#[tokio::test]
async fn unusable_files_are_refused_whole() {
    let w = world().await;
    w.carrier(&w.account, "VIVO").await;
    let (status, body) = w.import(b"nome;cnpj\nx;y\n".to_vec()).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["field"] == "header.1")
    );
    assert_eq!(w.import(Vec::new()).await.0, 422);
    let (status, _) = w
        .owner(
            "POST /v1/rpa/clients/import",
            Call {
                csv: Some(("application/json", b"{}".to_vec())),
                ..Call::default()
            },
        )
        .await;
    assert_eq!(status, 415);
    let big = format!("legal_name,cnpj,carrier\n{}", "x".repeat(1024 * 1024));
    assert_eq!(w.import(big.into_bytes()).await.0, 413);
    assert!(w.stored_clients(&w.account).await.is_empty());
}

/// `/v1/rpa/clients/import` fits the `{id}` routes too; their methods on it
/// are refused as methods the path does not take, not read as a client id.
#[tokio::test]
async fn the_import_path_takes_only_post() {
    let w = world().await;
    for route in [
        "GET /v1/rpa/clients/{id}",
        "PATCH /v1/rpa/clients/{id}",
        "DELETE /v1/rpa/clients/{id}",
    ] {
        let call = Call {
            params: &[("id", "import")],
            csv: Some(("text/csv", b"legal_name,cnpj,carrier\n".to_vec())),
            ..Call::default()
        };
        let (status, body) = w.owner(route, call).await;
        assert_eq!(status, 405, "{route}: {body}");
        assert_eq!(body["detail"], "this path accepts POST", "{route}");
    }
}

/// Two imports of one file at the same moment still make each client once.
#[tokio::test]
async fn concurrent_imports_make_each_client_once() {
    let w = world().await;
    w.carrier(&w.account, "VIVO").await;
    let mut file = String::from("legal_name,cnpj,carrier,unit\n");
    for i in 0..20 {
        file.push_str(&format!("Cliente {i},{CNPJ},VIVO,Unidade {i}\n"));
    }
    let (a, b) = tokio::join!(
        w.import(file.clone().into_bytes()),
        w.import(file.into_bytes())
    );
    assert_eq!((a.0, b.0), (200, 200));
    let created =
        a.1["summary"]["created"].as_u64().unwrap() + b.1["summary"]["created"].as_u64().unwrap();
    assert_eq!(created, 20, "{} {}", a.1["summary"], b.1["summary"]);
    for report in [&a.1, &b.1] {
        assert_eq!(report["summary"]["failed"], 0, "{report}");
    }
    assert_eq!(w.stored_clients(&w.account).await.len(), 20);
}

fn encoding_of(text: &str) -> Vec<u8> {
    // Windows-1252 for the Latin-1 range this text uses.
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).expect("a Latin-1 character"))
        .collect()
}

fn expected(rows: &[(u64, &str)]) -> Vec<(u64, String)> {
    rows.iter().map(|(l, r)| (*l, (*r).to_owned())).collect()
}
