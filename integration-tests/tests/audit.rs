//! The audit log: security events reach the database and `palaver audit` prints them, and no password or token is
//! ever written to the audit log or the server's log.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use palaver_integration_tests::Engine;
use palaver_integration_tests::process::ServerProcess;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

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

/// The canaries: every secret the scenario uses is one of these, and none may appear in any log.
struct Canaries {
    john_password: &'static str,
    jane_password: &'static str,
    wrong_password: &'static str,
    room_password: &'static str,
    wrong_room_password: &'static str,
    message: &'static str,
}

const CANARIES: Canaries = Canaries {
    john_password: CANARY_PASSWORD,
    jane_password: "canary-password-jane-51c0",
    wrong_password: "canary-wrong-password-9e2d",
    room_password: "canary-room-password-44b1",
    wrong_room_password: "canary-wrong-room-password-0a7c",
    message: "canary message body 6d3f",
};

/// A username carrying a newline and an ANSI escape, as a log-forging attempt.
const FORGING_USERNAME: &str = "mallory\nFORGED audit line\u{1b}[31m";

async fn post(http: &reqwest::Client, url: String, body: Value, token: Option<&str>) -> Value {
    let mut request = http.post(url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    response.json().await.unwrap_or(Value::Null)
}

async fn login(
    http: &reqwest::Client,
    server: &ServerProcess,
    username: &str,
    password: &str,
) -> String {
    let body = post(
        http,
        server.url("/api/login"),
        json!({"username": username, "password": password}),
        None,
    )
    .await;
    body["token"].as_str().expect("a token").to_owned()
}

/// The `event/outcome` pairs of the audit lines.
fn seen(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            format!(
                "{}/{}",
                l["event"].as_str().unwrap_or(""),
                l["outcome"].as_str().unwrap_or("")
            )
        })
        .collect()
}

async fn security_events_are_audited_without_secrets(engine: Engine) {
    // Our own crates log at debug, the most they ever say; in the format for people, where a raw newline in a field
    // would start a forged line.
    let verbose = [
        (
            "PALAVER_LOG",
            "info,palaver_runtime=debug,palaver_handlers=debug",
        ),
        ("PALAVER_LOG_FORMAT", "pretty"),
    ];
    let Some(server) = ServerProcess::start(engine, &verbose).await else {
        return;
    };
    let http = reqwest::Client::new();
    for (username, password) in [
        ("john_doe", CANARIES.john_password),
        ("jane_doe", CANARIES.jane_password),
    ] {
        let account = json!({"username": username, "email": format!("{username}@example.com"), "password": password});
        let registered = http
            .post(server.url("/api/register"))
            .json(&account)
            .send()
            .await
            .unwrap();
        assert_eq!(registered.status(), 201);
    }
    let wrong = json!({"username": "john_doe", "password": CANARIES.wrong_password});
    assert_eq!(
        http.post(server.url("/api/login"))
            .json(&wrong)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let forging = json!({"username": FORGING_USERNAME, "password": CANARIES.wrong_password});
    assert_eq!(
        http.post(server.url("/api/login"))
            .json(&forging)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let john = login(&http, &server, "john_doe", CANARIES.john_password).await;
    let jane = login(&http, &server, "jane_doe", CANARIES.jane_password).await;
    let ticket = post(&http, server.url("/api/ws-ticket"), json!({}), Some(&jane)).await["ticket"]
        .as_str()
        .expect("a ticket")
        .to_owned();

    // Rooms over HTTP and over WebSocket; a private room's password guessed wrong once, then right.
    let created = post(
        &http,
        server.url("/api/rooms"),
        json!({"name": "scratch"}),
        Some(&john),
    )
    .await;
    assert_eq!(created["name"], "scratch", "{created}");
    let deleted = http
        .delete(server.url("/api/rooms/scratch"))
        .bearer_auth(&john)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let ws_url = format!("ws://{}/ws", server.addr());
    let mut request = ws_url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {john}").parse().unwrap());
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "palaver.v1.json".parse().unwrap());
    let (mut owner, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let commands = [
        json!({"type": "create_room", "id": "c", "data": {"name": "vault", "private": true, "password": CANARIES.room_password}}),
        json!({"type": "room_message", "id": "m", "data": {"room": "vault", "content": CANARIES.message}}),
        json!({"type": "create_room", "id": "t", "data": {"name": "temporary"}}),
        json!({"type": "delete_room", "id": "d", "data": {"name": "temporary"}}),
    ];
    for command in commands {
        let id = command["id"].clone();
        owner
            .send(Message::text(command.to_string()))
            .await
            .unwrap();
        // A deletion is answered by the event every member gets.
        let done = |frame: &Value| frame["id"] == id || frame["type"] == "room_deleted";
        answered(&mut owner, done).await;
    }
    let mut request = format!("{ws_url}?ticket={ticket}")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "palaver.v1.json".parse().unwrap());
    let (mut guest, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut joins = Vec::new();
    for (id, password) in [
        ("wrong", CANARIES.wrong_room_password),
        ("right", CANARIES.room_password),
    ] {
        let join =
            json!({"type": "join_room", "id": id, "data": {"name": "vault", "password": password}});
        guest.send(Message::text(join.to_string())).await.unwrap();
        joins.push(answered(&mut guest, |frame: &Value| frame["id"] == id).await);
    }
    assert_eq!(
        joins[0],
        json!({"type": "error", "code": "bad_room_password", "message": "incorrect room password", "id": "wrong"}),
        "the wrong room password is refused"
    );
    assert_eq!(
        (&joins[1]["type"], &joins[1]["room"], &joins[1]["id"]),
        (&json!("welcome"), &json!("vault"), &json!("right")),
        "the right room password lets jane in: {}",
        joins[1]
    );
    // The owner's message is the room's first: jane joined after it, and nothing else was posted.
    assert_eq!(joins[1]["last_seq"], 1, "{}", joins[1]);

    // A flood past the per-user command limit (20 a second): many refusals, one audit event.
    for n in 0..60 {
        let list = json!({"type": "list_rooms", "id": format!("flood-{n}"), "data": {}});
        guest.send(Message::text(list.to_string())).await.unwrap();
    }
    answered(&mut guest, |frame: &Value| frame["code"] == "rate_limited").await;

    let logout = http
        .post(server.url("/api/logout"))
        .bearer_auth(&john)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    let revoked = http
        .get(server.url("/api/me"))
        .bearer_auth(&john)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 401);

    // Guessing jane's password past the lockout: five failures, then refusals recorded once.
    for _ in 0..12 {
        let guess = json!({"username": "jane_doe", "password": CANARIES.wrong_password});
        http.post(server.url("/api/login"))
            .json(&guess)
            .send()
            .await
            .unwrap();
    }

    // The writer stores events in the background: look until all are there (bounded).
    let wanted = [
        "register/success",
        "login/failure",
        "login/success",
        "logout/success",
        "token_rejected/denied",
        "room_created/success",
        "room_deleted/success",
        "room_password_failed/failure",
        "rate_limited/denied",
    ];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let (text, lines) = loop {
        let (text, lines) = audit_lines(&server).await;
        let seen = seen(&lines);
        // Every kind of event, and the last ones this test caused (the lockout refusal comes after the flood's,
        // which already makes a `rate_limited/denied`).
        let locked_out = lines
            .iter()
            .any(|l| l["event"] == "rate_limited" && l["details"]["limit"] == "login_failures");
        if (wanted.iter().all(|w| seen.iter().any(|s| s == w)) && locked_out)
            || tokio::time::Instant::now() > deadline
        {
            break (text, lines);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let seen = seen(&lines);
    for want in wanted {
        assert!(
            seen.iter().any(|s| s == want),
            "{want} missing from:\n{text}"
        );
    }
    let rooms: Vec<(&str, &str)> = lines
        .iter()
        .filter(|l| l["event"].as_str().is_some_and(|e| e.starts_with("room_")))
        .map(|l| {
            (
                l["event"].as_str().unwrap_or(""),
                l["details"]["room"].as_str().unwrap_or(""),
            )
        })
        .collect();
    for expected in [
        ("room_created", "scratch"),
        ("room_deleted", "scratch"),
        ("room_created", "vault"),
        ("room_created", "temporary"),
        ("room_deleted", "temporary"),
        ("room_password_failed", "vault"),
    ] {
        assert!(
            rooms.contains(&expected),
            "{expected:?} missing from:\n{text}"
        );
    }
    let floods: Vec<&Value> = lines
        .iter()
        .filter(|l| l["event"] == "rate_limited" && l["details"]["limit"] == "ws_messages")
        .collect();
    assert_eq!(floods.len(), 1, "one event for the whole flood:\n{text}");
    let lockouts = lines
        .iter()
        .filter(|l| l["event"] == "rate_limited" && l["details"]["limit"] == "login_failures")
        .count();
    assert_eq!(lockouts, 1, "one event for the locked-out guesser:\n{text}");
    assert_eq!(floods[0]["username"], "jane_doe");
    let guess = lines
        .iter()
        .find(|l| l["event"] == "room_password_failed")
        .unwrap();
    assert_eq!(guess["username"], "jane_doe");
    let failure = lines
        .iter()
        .find(|l| l["event"] == "login" && l["outcome"] == "failure")
        .unwrap();
    assert_eq!(failure["username"], "john_doe");
    assert_eq!(failure["ip"], "127.0.0.1");
    // The forging username is stored as given and printed JSON-escaped: one line, no raw escape character.
    let forging = FORGING_USERNAME.to_lowercase();
    assert!(
        lines
            .iter()
            .any(|l| l["username"].as_str().map(str::to_lowercase) == Some(forging.clone())),
        "{text}"
    );

    // No secret, in the audit log or the server's own log.
    let log = server.log();
    let signature = |token: &str| token.rsplit('.').next().unwrap_or_default().to_owned();
    let secrets = [
        CANARIES.john_password.to_owned(),
        CANARIES.jane_password.to_owned(),
        CANARIES.wrong_password.to_owned(),
        CANARIES.room_password.to_owned(),
        CANARIES.wrong_room_password.to_owned(),
        CANARIES.message.to_owned(),
        john.clone(),
        jane.clone(),
        signature(&john),
        signature(&jane),
        ticket.clone(),
    ];
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "{secret:?} in the audit log"
        );
        assert!(
            !log.contains(secret.as_str()),
            "{secret:?} in the server log"
        );
    }
    // The forged line stays inside its event: nothing starts a log line but the server, and no raw escape passes.
    assert!(
        !log.lines()
            .any(|line| line.to_lowercase().starts_with("forged")),
        "a forged log line:\n{log}"
    );
    assert!(!log.contains('\u{1b}'), "a raw escape in the log");
    assert!(!text.contains('\u{1b}'), "a raw escape in the audit output");
    assert!(
        log.contains("mallory"),
        "the forging attempt is logged (escaped)"
    );
}

/// Reads frames until one is `done`, and returns it.
async fn answered<S>(ws: &mut S, done: impl Fn(&Value) -> bool) -> Value
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("an answer in time")
            .expect("the socket is open")
            .expect("a frame");
        if let Message::Text(text) = frame {
            let value: Value = serde_json::from_str(&text).expect("JSON");
            if done(&value) {
                return value;
            }
        }
    }
}

palaver_integration_tests::on_every_engine!(security_events_are_audited_without_secrets);
