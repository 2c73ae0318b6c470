use chrono::TimeZone;
use proptest::prelude::*;

use super::*;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 15, 12, 0, 0).unwrap()
}

fn valid_credential() -> (String, String, String) {
    let key_id = ids::new_id(ids::KEY);
    let secret = generate_secret().expose().to_owned();
    (format!("Bearer {key_id}.{secret}"), key_id, secret)
}

#[test]
fn role_and_status_strings() {
    for role in Role::ALL {
        assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        assert_eq!(
            serde_json::to_value(role).unwrap(),
            serde_json::Value::from(role.as_str())
        );
    }
    for status in KeyStatus::ALL {
        assert_eq!(status.as_str().parse::<KeyStatus>(), Ok(status));
    }
    assert!("root".parse::<Role>().is_err());
    assert!(serde_json::from_str::<Role>("\"Owner\"").is_err());
}

#[test]
fn generated_secret_shape() {
    let secret = generate_secret();
    let s = secret.expose();
    assert_eq!(s.len(), SECRET_LEN);
    assert_eq!(SECRET_LEN, 45);
    assert!(s.starts_with("nvm_sk_"));
    assert!(
        s[SECRET_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric())
    );
    assert!(checksum_ok(s));
    assert_eq!(format!("{secret:?}"), "Secret(***)");
    assert_ne!(generate_secret().expose(), s);
}

#[test]
fn a_first_key_secret_takes_its_token_and_its_salt() {
    let token = crate::token::generate_activation_token();
    let salt = new_key_salt();
    let secret = first_key_secret(token.expose(), &salt);
    let s = secret.expose();
    assert_eq!(s.len(), SECRET_LEN);
    assert!(s.starts_with(SECRET_PREFIX) && checksum_ok(s));
    assert_eq!(first_key_secret(token.expose(), &salt).expose(), s);
    let other = crate::token::generate_activation_token();
    assert_ne!(first_key_secret(other.expose(), &salt).expose(), s);
    assert_ne!(
        first_key_secret(token.expose(), &new_key_salt()).expose(),
        s
    );
    assert_ne!(new_key_salt(), salt);
}

#[test]
fn checksum_rejects_bad_shapes() {
    let good = generate_secret().expose().to_owned();
    assert!(!checksum_ok(""));
    assert!(!checksum_ok("nvm_sk_"));
    assert!(!checksum_ok(&good[..SECRET_LEN - 1]));
    assert!(!checksum_ok(&format!("{good}0")));
    assert!(!checksum_ok(&good.replace("nvm_sk_", "nvm_at_")));
    assert!(!checksum_ok(&good.replace("nvm_sk_", "NVM_SK_")));
    // Payload and checksum both valid base62 but swapped around.
    let payload = &good[7..39];
    assert!(!checksum_ok(&format!(
        "nvm_sk_{}{}",
        &payload[6..],
        &good[39..]
    )));
}

#[test]
fn hash_and_verify() {
    let secret = generate_secret();
    let hash = hash_secret(secret.expose());
    assert_eq!(hash.len(), 64);
    assert!(
        hash.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert!(verify_secret(secret.expose(), &hash));
    assert!(verify_secret(secret.expose(), &hash.to_uppercase()));
    assert!(!verify_secret(generate_secret().expose(), &hash));
    assert!(!verify_secret(secret.expose(), ""));
    assert!(!verify_secret(secret.expose(), &hash[..63]));
}

#[test]
fn parses_credentials() {
    let (header, key_id, secret) = valid_credential();
    let expected = Credential {
        key_id: key_id.clone(),
        secret: secret.clone(),
    };
    for variant in [
        header.clone(),
        format!("bearer {key_id}.{secret}"),
        format!("BEARER {key_id}.{secret}"),
        format!("  Bearer   {key_id}.{secret}  "),
        format!("Bearer\t{key_id}.{secret}"),
    ] {
        assert_eq!(
            parse_credential(&variant).as_ref(),
            Ok(&expected),
            "{variant}"
        );
    }
    let debug = format!("{expected:?}");
    assert!(
        debug.contains(&key_id) && !debug.contains(&secret),
        "{debug}"
    );
}

#[test]
fn rejects_bad_credentials() {
    let (_, key_id, secret) = valid_credential();
    let other_id = ids::new_id(ids::ACCOUNT);
    let cases = [
        (String::new(), CredentialError::Scheme),
        ("Bearer".to_owned(), CredentialError::Malformed),
        (format!("Basic {key_id}.{secret}"), CredentialError::Scheme),
        (format!("{key_id}.{secret}"), CredentialError::Scheme),
        (format!("Bearer{key_id}.{secret}"), CredentialError::Scheme),
        ("Bearer ".to_owned(), CredentialError::Malformed),
        (
            format!("Bearer {key_id}{secret}"),
            CredentialError::Malformed,
        ),
        (
            format!("Bearer {key_id}. {secret}"),
            CredentialError::Malformed,
        ),
        (
            format!("Bearer {other_id}.{secret}"),
            CredentialError::KeyId,
        ),
        (
            format!("Bearer {}.{secret}", key_id.to_uppercase()),
            CredentialError::KeyId,
        ),
        (format!("Bearer .{secret}"), CredentialError::KeyId),
        (
            format!("Bearer {key_id}.{}", secret.replace("nvm_sk_", "nvm_at_")),
            CredentialError::SecretPrefix,
        ),
        (
            format!("Bearer {key_id}.{}", &secret[..SECRET_LEN - 1]),
            CredentialError::Checksum,
        ),
        (
            format!("Bearer {key_id}.{secret}.x"),
            CredentialError::Checksum,
        ),
        (
            format!("Bearer {key_id}.{secret}{}", " ".repeat(200)),
            CredentialError::TooLong,
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(parse_credential(&input), Err(expected), "{input:?}");
    }
}

#[test]
fn new_key_validation() {
    let ok = |body: serde_json::Value| {
        serde_json::from_value::<NewKeyRequest>(body)
            .unwrap()
            .validate(now(), &Role::TENANT)
    };
    let key = ok(serde_json::json!({"name": "  ci deploy ", "role": "operator"})).unwrap();
    assert_eq!(
        key,
        ValidNewKey {
            name: "ci deploy".into(),
            role: Role::Operator,
            expires_at: None
        }
    );

    let in_two_years = Utc.with_ymd_and_hms(2028, 3, 15, 12, 0, 0).unwrap();
    let key =
        ok(serde_json::json!({"name": "x", "role": "owner", "expires_at": in_two_years})).unwrap();
    assert_eq!(key.expires_at, Some(in_two_years));

    let errors = ok(serde_json::json!({
        "name": " ",
        "role": "admin",
        "expires_at": in_two_years + Duration::seconds(1)
    }))
    .unwrap_err();
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["name", "role", "expires_at"]);

    let errors =
        ok(serde_json::json!({"name": "x", "role": "owner", "expires_at": now()})).unwrap_err();
    assert_eq!(
        errors,
        [FieldError::new("expires_at", "must be in the future")]
    );

    assert!(ok(serde_json::json!({"name": "é".repeat(100), "role": "owner"})).is_ok());
    assert!(ok(serde_json::json!({"name": "é".repeat(101), "role": "owner"})).is_err());

    // Admin stays refused even when a caller lists it.
    let admin = NewKeyRequest {
        name: "x".into(),
        role: Role::Admin,
        expires_at: None,
    };
    assert!(admin.validate(now(), &Role::ALL).is_err());

    let approver = NewKeyRequest {
        name: "x".into(),
        role: Role::Approver,
        expires_at: None,
    };
    let errors = approver.validate(now(), &[Role::Operator]).unwrap_err();
    assert_eq!(errors[0].field, "role");

    assert!(
        serde_json::from_value::<NewKeyRequest>(
            serde_json::json!({"name": "x", "role": "owner", "extra": 1})
        )
        .is_err()
    );
}

#[test]
fn usability() {
    let t = now();
    assert!(is_usable(KeyStatus::Active, None, t));
    assert!(is_usable(
        KeyStatus::Active,
        Some(t + Duration::seconds(1)),
        t
    ));
    assert!(!is_usable(KeyStatus::Active, Some(t), t));
    assert!(!is_usable(
        KeyStatus::Active,
        Some(t - Duration::days(1)),
        t
    ));
    assert!(!is_usable(KeyStatus::Revoked, None, t));
    assert!(!is_usable(
        KeyStatus::Revoked,
        Some(t + Duration::days(1)),
        t
    ));
}

#[test]
fn last_used_throttle() {
    let t = now();
    assert!(last_used_due(None, t));
    assert!(last_used_due(Some(t - Duration::seconds(60)), t));
    assert!(last_used_due(Some(t - Duration::hours(3)), t));
    assert!(!last_used_due(Some(t - Duration::seconds(59)), t));
    assert!(!last_used_due(Some(t), t));
    // A clock running behind another instance's must not cause writes.
    assert!(!last_used_due(Some(t + Duration::seconds(5)), t));
}

proptest! {
    #[test]
    fn parse_credential_never_panics(input in "\\PC{0,220}") {
        let _ = parse_credential(&input);
        let _ = checksum_ok(&input);
        let _ = verify_secret(&input, &input);
    }

    #[test]
    fn bearer_with_noise_never_panics(noise in "\\PC{0,120}", dot in any::<bool>()) {
        let (_, key_id, _) = valid_credential();
        let sep = if dot { "." } else { "" };
        let _ = parse_credential(&format!("Bearer {key_id}{sep}{noise}"));
        let _ = parse_credential(&format!("Bearer {key_id}.nvm_sk_{noise}"));
    }

    #[test]
    fn generated_credentials_round_trip(_seed in any::<u8>()) {
        let (header, key_id, secret) = valid_credential();
        let credential = parse_credential(&header).unwrap();
        prop_assert_eq!(&credential.key_id, &key_id);
        prop_assert_eq!(&credential.secret, &secret);
        prop_assert!(verify_secret(&credential.secret, &hash_secret(&secret)));
    }

    #[test]
    fn any_single_char_change_is_caught(index in 0..SECRET_LEN, replacement in any::<char>()) {
        let secret = generate_secret().expose().to_owned();
        let hash = hash_secret(&secret);
        let original = char::from(secret.as_bytes()[index]);
        prop_assume!(replacement != original);
        let mut changed = secret.clone();
        changed.replace_range(index..=index, replacement.encode_utf8(&mut [0; 4]));
        // CRC32 detects every single-character change in the payload or the
        // checksum, so the offline check alone already fails.
        prop_assert!(!checksum_ok(&changed), "{}", changed);
        prop_assert!(!verify_secret(&changed, &hash));
    }
}
