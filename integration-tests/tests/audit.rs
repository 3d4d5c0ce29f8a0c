//! The audit log: security events reach the database and `palaver audit` prints them, and no password or token is
//! ever written to the audit log or the server's log.

use std::time::Duration;

use palaver_integration_tests::Engine;
use palaver_integration_tests::process::ServerProcess;
use serde_json::{Value, json};

const CANARY_PASSWORD: &str = "canary-password-7f3a91";

async fn audit_lines(server: &ServerProcess) -> (String, Vec<Value>) {
    let output = server.command(&["audit", "--since", "1h"]).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let lines = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object a line"))
        .collect();
    (text, lines)
}

async fn security_events_are_audited_without_secrets(engine: Engine) {
    let Some(server) = ServerProcess::start(engine, &[]).await else {
        return;
    };
    let http = reqwest::Client::new();
    let account =
        json!({"username": "john_doe", "email": "john@example.com", "password": CANARY_PASSWORD});
    let registered = http
        .post(server.url("/api/register"))
        .json(&account)
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let wrong = json!({"username": "john_doe", "password": "not-the-canary-1"});
    assert_eq!(
        http.post(server.url("/api/login"))
            .json(&wrong)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let right = json!({"username": "john_doe", "password": CANARY_PASSWORD});
    let login: Value = http
        .post(server.url("/api/login"))
        .json(&right)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap().to_owned();
    let logout = http
        .post(server.url("/api/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    let revoked = http
        .get(server.url("/api/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 401);

    // The writer stores events in the background: look until all are there (bounded).
    let wanted = [
        "register/success",
        "login/failure",
        "login/success",
        "logout/success",
        "token_rejected/denied",
    ];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let (text, lines) = loop {
        let (text, lines) = audit_lines(&server).await;
        let seen: Vec<String> = lines
            .iter()
            .map(|l| {
                format!(
                    "{}/{}",
                    l["event"].as_str().unwrap_or(""),
                    l["outcome"].as_str().unwrap_or("")
                )
            })
            .collect();
        if wanted.iter().all(|w| seen.iter().any(|s| s == w))
            || tokio::time::Instant::now() > deadline
        {
            break (text, lines);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for want in wanted {
        assert!(
            lines.iter().any(|l| format!(
                "{}/{}",
                l["event"].as_str().unwrap_or(""),
                l["outcome"].as_str().unwrap_or("")
            ) == want),
            "{want} missing from:\n{text}"
        );
    }
    let failure = lines
        .iter()
        .find(|l| l["event"] == "login" && l["outcome"] == "failure")
        .unwrap();
    assert_eq!(failure["username"], "john_doe");
    assert_eq!(failure["ip"], "127.0.0.1");
    // No password or token, in the audit log or the server's own log.
    let log = server.log();
    for secret in [CANARY_PASSWORD, "not-the-canary-1", token.as_str()] {
        assert!(!text.contains(secret), "a secret in the audit log");
        assert!(!log.contains(secret), "a secret in the server log");
    }
}

palaver_integration_tests::on_every_engine!(security_events_are_audited_without_secrets);
