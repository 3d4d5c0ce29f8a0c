//! Attacks on credentials, and what stops them: CSRF on cookie-authenticated changes, password guessing against one
//! account, credential stuffing from one address, username enumeration by the login's answer, room-password
//! guessing, lockouts that end with their window, and a token that expires on an open socket. Each test asserts the
//! exact refusal and that nothing changed.

use std::time::Duration;

use palaver_integration_tests::api::{
    Client, PASSWORD, assert_exact_error, error_body, read, token_claims, unix_now,
};
use palaver_integration_tests::ws::{FRAME_TIMEOUT, Frame, WsClient, raw_upgrade};
use palaver_integration_tests::{Engine, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ROOM_PASSWORD: &str = "open sesame";

/// PROTOCOL §1.3: the refusal of a cookie-authenticated change without the session's CSRF token.
const CSRF_FAILED: &str = "this request needs the session's CSRF token in X-CSRF-Token";
/// PROTOCOL §1.4: a wrong password and an unknown account alike.
const INVALID_CREDENTIALS: &str = "invalid username or password";
/// PROTOCOL §1.7: the HTTP limits' refusal.
const TOO_MANY_REQUESTS: &str = "too many requests; retry later";
/// PROTOCOL §1.7, §3.3: a room password locked out.
const RATE_LIMIT_EXCEEDED: &str = "rate limit exceeded";
/// PROTOCOL §9: a wrong room password.
const INCORRECT_ROOM_PASSWORD: &str = "incorrect room password";

fn assert_csrf_failed(status: StatusCode, body: &Value) {
    assert_exact_error(
        status,
        body,
        StatusCode::FORBIDDEN,
        "csrf_failed",
        CSRF_FAILED,
    );
}

fn assert_invalid_credentials(status: StatusCode, body: &Value) {
    assert_exact_error(
        status,
        body,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        INVALID_CREDENTIALS,
    );
}

fn assert_too_many_requests(status: StatusCode, body: &Value) {
    assert_exact_error(
        status,
        body,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        TOO_MANY_REQUESTS,
    );
}

/// The JSON protocol's error frame answering command `id`.
fn error_frame(code: &str, message: &str, id: &str) -> Value {
    json!({"type": "error", "code": code, "message": message, "id": id})
}

// ---------------------------------------------------------------------------------------------------------------
// Sessions and CSRF.

/// Registers and logs in; returns (token, the session cookie header value, the CSRF token from the login's cookies).
async fn browser_login(client: &Client, username: &str) -> (String, String, String) {
    client.register(username).await;
    browser_login_again(client, username).await
}

async fn room_names(client: &Client, token: &str) -> Vec<String> {
    let (_, list) = client.get("/api/rooms", Some(token)).await;
    list.as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_owned))
        .collect()
}

async fn cookie_authenticated_changes_need_the_sessions_csrf_token(engine: Engine) {
    let Some(client) = Client::start(engine).await else {
        return;
    };
    let (token, cookies, csrf) = browser_login(&client, "john_doe").await;
    let create = |csrf_header: Option<String>, name: &'static str| {
        let mut request = client
            .http
            .post(client.server.url("/api/rooms"))
            .header("cookie", cookies.clone())
            .json(&json!({"name": name}));
        if let Some(value) = csrf_header {
            request = request.header("x-csrf-token", value);
        }
        request.send()
    };
    let (status, body) = read(create(None, "no token").await.unwrap()).await;
    assert_csrf_failed(status, &body);
    let (status, body) = read(create(Some("0".repeat(64)), "wrong token").await.unwrap()).await;
    assert_csrf_failed(status, &body);
    // Another session's token (a second login of the same user) does not pass for this one.
    let (_, _, other_csrf) = browser_login_again(&client, "john_doe").await;
    let (status, body) = read(create(Some(other_csrf), "other session").await.unwrap()).await;
    assert_csrf_failed(status, &body);
    assert!(
        room_names(&client, &token).await.is_empty(),
        "nothing was created"
    );

    let (status, body) = read(create(Some(csrf.clone()), "with token").await.unwrap()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Bearer requests carry no ambient credential and need no token.
    let (status, _) = client
        .post_as(&token, "/api/rooms", json!({"name": "bearer room"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        room_names(&client, &token).await,
        ["with token", "bearer room"]
    );

    // GET /api/csrf with the session answers the same session-bound token.
    let response = client
        .http
        .get(client.server.url("/api/csrf"))
        .header("cookie", cookies.clone())
        .send()
        .await;
    let (status, body) = read(response.unwrap()).await;
    assert_eq!(
        (status, body["csrf_token"].as_str()),
        (StatusCode::OK, Some(csrf.as_str()))
    );
    // Logout by cookie needs it too.
    let logout = client
        .http
        .post(client.server.url("/api/logout"))
        .header("cookie", cookies.clone())
        .send()
        .await;
    let (status, body) = read(logout.unwrap()).await;
    assert_csrf_failed(status, &body);
    let (status, _) = client.get("/api/me", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "the refused logout revoked nothing");
}

/// A login of an existing user; returns the same triple as [`browser_login`].
async fn browser_login_again(client: &Client, username: &str) -> (String, String, String) {
    let response = client
        .http
        .post(client.server.url("/api/login"))
        .json(&json!({"username": username, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let csrf = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| {
            c.strip_prefix("palaver_csrf=")
                .map(|c| c.split(';').next().unwrap_or("").to_owned())
        })
        .expect("login sets the CSRF cookie");
    let (_, body) = read(response).await;
    let token = body["token"].as_str().unwrap().to_owned();
    (
        token.clone(),
        format!("palaver_session={token}; palaver_csrf={csrf}"),
        csrf,
    )
}

// ---------------------------------------------------------------------------------------------------------------
// Password guessing.

async fn password_guessing_is_locked_out_per_account(engine: Engine) {
    let extra = [
        ("PALAVER_LOGIN_FAILURE_LIMIT", "5"),
        ("PALAVER_LOGIN_IP_FAILURE_LIMIT", "20"),
    ];
    let Some(server) = TestServer::start_with(engine, &extra).await else {
        return;
    };
    let client = Client {
        server,
        http: reqwest::Client::new(),
    };
    client.register("john_doe").await;
    let attempt = |password: &'static str| {
        client.post(
            "/api/login",
            json!({"username": "john_doe", "password": password}),
        )
    };
    for _ in 0..5 {
        let (status, body) = attempt("wrong horse battery").await;
        assert_invalid_credentials(status, &body);
    }
    // The rest of a hundred guesses are all refused untried.
    for _ in 5..100 {
        let (status, body) = attempt("wrong horse battery").await;
        assert_too_many_requests(status, &body);
    }
    // Locked: even the right password is refused now, without saying whether it was right.
    for password in ["wrong horse battery", PASSWORD] {
        let response = client
            .http
            .post(client.server.url("/api/login"))
            .json(&json!({"username": "JOHN_DOE", "password": password}))
            .send()
            .await
            .unwrap();
        let retry_after: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=900).contains(&retry_after), "{retry_after}");
        let (status, body) = read(response).await;
        assert_too_many_requests(status, &body);
    }
    // Other accounts are not locked by John's guesser (the address limit is separate and not reached).
    client.register("jane_doe").await;
    let (status, _) = client
        .post(
            "/api/login",
            json!({"username": "jane_doe", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

async fn credential_stuffing_from_one_address_is_locked_out(engine: Engine) {
    let extra = [
        ("PALAVER_LOGIN_FAILURE_LIMIT", "100"),
        ("PALAVER_LOGIN_IP_FAILURE_LIMIT", "3"),
    ];
    let Some(server) = TestServer::start_with(engine, &extra).await else {
        return;
    };
    let client = Client {
        server,
        http: reqwest::Client::new(),
    };
    client.register("john_doe").await;
    for victim in ["alice", "bob", "carol"] {
        let (status, body) = client
            .post(
                "/api/login",
                json!({"username": victim, "password": "hunter2hunter2"}),
            )
            .await;
        assert_invalid_credentials(status, &body);
    }
    // The address has used its failures: any account, even with the right password, waits.
    let (status, body) = client
        .post(
            "/api/login",
            json!({"username": "john_doe", "password": PASSWORD}),
        )
        .await;
    assert_too_many_requests(status, &body);
}

// ---------------------------------------------------------------------------------------------------------------
// Username enumeration.

/// Everything a client can see of an answer but its date: status, headers (`date` left out) and body.
async fn login_answer(
    client: &Client,
    login: &str,
    password: &str,
) -> (StatusCode, Vec<(String, String)>, Value) {
    let response = client
        .http
        .post(client.server.url("/api/login"))
        .json(&json!({"username": login, "password": password}))
        .send()
        .await
        .expect("request sent");
    let mut headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter(|(name, _)| *name != "date")
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                value.to_str().unwrap_or("<not ASCII>").to_owned(),
            )
        })
        .collect();
    headers.sort();
    let (status, body) = read(response).await;
    (status, headers, body)
}

/// A wrong password and an unknown account (by name or by email, with a short or an over-long password) get answers
/// that differ in nothing a client can read, and are counted alike by the lockout: both lock out after the same number
/// of failures. That the work behind them is the same (one bcrypt verification each, the unknown one against a dummy
/// hash of the same cost) is proved in the handlers' unit tests, which count verifications; how long each takes is a
/// measurement, see [`measure_login_time_for_known_and_unknown_users`].
async fn an_unknown_user_is_answered_exactly_like_a_wrong_password(engine: Engine) {
    let limits = [
        ("PALAVER_LOGIN_FAILURE_LIMIT", "3"),
        ("PALAVER_LOGIN_IP_FAILURE_LIMIT", "1000"),
    ];
    let Some(client) = Client::start_with(engine, &limits).await else {
        return;
    };
    client.register("john_doe").await;
    let over_long = "k".repeat(73);
    let wrong = login_answer(&client, "john_doe", "wrong horse battery").await;
    assert_invalid_credentials(wrong.0, &wrong.2);
    assert!(
        wrong
            .1
            .contains(&("www-authenticate".to_owned(), "Bearer".to_owned())),
        "{:?}",
        wrong.1
    );
    assert!(
        !wrong.1.iter().any(|(name, _)| name == "set-cookie"),
        "{:?}",
        wrong.1
    );
    for (login, password) in [
        ("nobody_here", "wrong horse battery"),
        ("nobody@example.com", "wrong horse battery"),
        ("john_doe@example.com", "wrong horse battery"),
        ("john_doe", over_long.as_str()),
        ("nobody_else", over_long.as_str()),
    ] {
        let answer = login_answer(&client, login, password).await;
        assert_eq!(
            answer,
            wrong,
            "{login} with a {}-byte password",
            password.len()
        );
    }
    // The lockout treats them alike too: john_doe has failed twice and nobody_here once; after three failures each,
    // both are refused untried, with one answer.
    for login in ["john_doe", "nobody_here", "nobody_here"] {
        let answer = login_answer(&client, login, "wrong horse battery 2").await;
        assert_eq!(answer, wrong, "another failure of {login}");
    }
    let known_locked = login_answer(&client, "john_doe", PASSWORD).await;
    let unknown_locked = login_answer(&client, "nobody_here", PASSWORD).await;
    assert_too_many_requests(known_locked.0, &known_locked.2);
    assert_eq!(
        (unknown_locked.0, &unknown_locked.2),
        (known_locked.0, &known_locked.2)
    );
    let header_names = |headers: &[(String, String)]| -> Vec<String> {
        headers.iter().map(|(name, _)| name.clone()).collect()
    };
    assert_eq!(
        header_names(&unknown_locked.1),
        header_names(&known_locked.1),
        "the same headers (Retry-After's value depends on the window)"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Room passwords.

async fn guessing_a_room_password_is_locked_out(engine: Engine) {
    let Some(client) = Client::start_with(engine, &[]).await else {
        return;
    };
    let john = client.user("john_doe").await;
    let jane = client.user("jane_doe").await;
    let mary = client.user("mary_doe").await;
    let mut owner = WsClient::json(&client.server, &john).await;
    owner
        .send_cmd(
            "create_room",
            json!({"name": "secret", "private": true, "password": ROOM_PASSWORD}),
            Some("c"),
        )
        .await;
    assert_eq!(owner.answer_to("c").await["type"], "room_created");

    let mut guesser = WsClient::json(&client.server, &jane).await;
    for guess in 0..5 {
        let id = format!("g{guess}");
        let password = format!("guess number {guess}");
        guesser
            .send_cmd(
                "join_room",
                json!({"name": "secret", "password": password}),
                Some(&id),
            )
            .await;
        let refused = guesser.answer_to(&id).await;
        assert_eq!(
            refused,
            error_frame("bad_room_password", INCORRECT_ROOM_PASSWORD, &id)
        );
    }
    // The sixth try is refused untried, even with the right password, over WebSocket and over HTTP alike.
    guesser
        .send_cmd(
            "join_room",
            json!({"name": "secret", "password": ROOM_PASSWORD}),
            Some("right"),
        )
        .await;
    let refused = guesser.answer_to("right").await;
    assert_eq!(
        refused,
        error_frame("rate_limited", RATE_LIMIT_EXCEEDED, "right")
    );
    let response = client
        .http
        .get(client.server.url("/api/rooms/secret/messages"))
        .bearer_auth(&jane)
        .header("x-room-password", ROOM_PASSWORD)
        .send()
        .await
        .unwrap();
    assert!(
        response.headers().get("retry-after").is_none(),
        "a room password lockout names no Retry-After"
    );
    let (status, body) = read(response).await;
    assert_exact_error(
        status,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        RATE_LIMIT_EXCEEDED,
    );
    assert_eq!(client.member_names(&john, "secret").await, ["john_doe"]);

    // The lockout is jane's on this room only: mary gets in with the password.
    let mut other = WsClient::json(&client.server, &mary).await;
    other
        .send_cmd(
            "join_room",
            json!({"name": "secret", "password": ROOM_PASSWORD}),
            Some("m"),
        )
        .await;
    assert_eq!(other.answer_to("m").await["type"], "welcome");
}

// ---------------------------------------------------------------------------------------------------------------
// Lockouts end with their window.

/// The lockout windows of the tests below, in seconds.
const SHORT_WINDOW: &str = "1";

/// How long a lockout of [`SHORT_WINDOW`] may take to end before the test fails (the sliding window counts the
/// previous window's failures for one more window).
const LOCKOUT_PATIENCE: Duration = Duration::from_secs(10);

/// How many times a test locks an account or a room out before it gives up seeing the right password refused while
/// locked (a lockout of one second may end between two requests on a busy machine; then it locks out again).
const LOCKOUT_ROUNDS: usize = 20;

/// A login's status, `Retry-After` header and body.
async fn login_attempt(client: &Client, password: &str) -> (StatusCode, Option<String>, Value) {
    let response = client
        .http
        .post(client.server.url("/api/login"))
        .json(&json!({"username": "john_doe", "password": password}))
        .send()
        .await
        .expect("request sent");
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap_or("<not ASCII>").to_owned());
    let (status, body) = read(response).await;
    (status, retry_after, body)
}

/// Asserts the lockout's refusal: `429` `rate_limited`, and `Retry-After: 1`, the whole seconds (rounded up) left of a
/// one-second window.
fn assert_locked_login(attempt: &(StatusCode, Option<String>, Value)) {
    let (status, retry_after, body) = attempt;
    assert_too_many_requests(*status, body);
    assert_eq!(retry_after.as_deref(), Some("1"), "{body}");
}

/// Guesses john's password until the lockout refuses a guess; every guess before is `invalid_credentials`, and there
/// are at least `limit` of them when no earlier failure is still counted (`fresh`).
async fn lock_out_login(client: &Client, limit: usize, fresh: bool) {
    let mut failures = 0;
    loop {
        let attempt = login_attempt(client, "wrong horse battery").await;
        if attempt.0 == StatusCode::TOO_MANY_REQUESTS {
            assert_locked_login(&attempt);
            assert!(
                !fresh || failures >= limit,
                "locked out after {failures} failures"
            );
            return;
        }
        assert_invalid_credentials(attempt.0, &attempt.2);
        failures += 1;
        assert!(failures <= 10 * limit, "{failures} failures and no lockout");
    }
}

async fn a_login_lockout_ends_with_its_window(engine: Engine) {
    let settings = [
        ("PALAVER_LOGIN_FAILURE_LIMIT", "3"),
        ("PALAVER_LOGIN_IP_FAILURE_LIMIT", "1000"),
        ("PALAVER_LOGIN_FAILURE_WINDOW_SECS", SHORT_WINDOW),
    ];
    let Some(client) = Client::start_with(engine, &settings).await else {
        return;
    };
    client.register("john_doe").await;
    // Locked out, the right password is refused untried like any other.
    let mut refused_while_locked = false;
    for round in 0..LOCKOUT_ROUNDS {
        // Past the first round, failures of the one before may still count in the sliding window.
        lock_out_login(&client, 3, round == 0).await;
        let right = login_attempt(&client, PASSWORD).await;
        if right.0 == StatusCode::TOO_MANY_REQUESTS {
            assert_locked_login(&right);
            refused_while_locked = true;
            break;
        }
        // The window ended between the two requests.
        assert_eq!(right.0, StatusCode::OK, "{}", right.2);
    }
    assert!(
        refused_while_locked,
        "the right password was never refused during a lockout ({LOCKOUT_ROUNDS} tries)"
    );
    // Once the window has passed, the right password is accepted again.
    let deadline = tokio::time::Instant::now() + LOCKOUT_PATIENCE;
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    let token = loop {
        poll.tick().await;
        let attempt = login_attempt(&client, PASSWORD).await;
        if attempt.0 == StatusCode::OK {
            break attempt.2["token"].as_str().expect("a token").to_owned();
        }
        assert_locked_login(&attempt);
        assert!(
            tokio::time::Instant::now() < deadline,
            "still locked out {LOCKOUT_PATIENCE:?} after the lockout began"
        );
    };
    let (status, me) = client.get("/api/me", Some(&token)).await;
    assert_eq!(
        (status, &me["username"]),
        (StatusCode::OK, &json!("john_doe"))
    );
}

/// Tries wrong passwords for the private room `secret` on `ws` until the lockout refuses one; every try before is
/// `bad_room_password`, and there are at least `limit` of them when no earlier failure is still counted (`fresh`).
async fn lock_out_room(ws: &mut WsClient, limit: usize, fresh: bool) {
    let mut failures = 0;
    loop {
        let id = format!("guess-{failures}");
        ws.send_cmd(
            "join_room",
            json!({"name": "secret", "password": "not the password"}),
            Some(&id),
        )
        .await;
        let refused = ws.next_json().await;
        if refused["code"] == "rate_limited" {
            assert_eq!(
                refused,
                error_frame("rate_limited", RATE_LIMIT_EXCEEDED, &id)
            );
            assert!(
                !fresh || failures >= limit,
                "locked out after {failures} failures"
            );
            return;
        }
        assert_eq!(
            refused,
            error_frame("bad_room_password", INCORRECT_ROOM_PASSWORD, &id)
        );
        failures += 1;
        assert!(failures <= 10 * limit, "{failures} failures and no lockout");
    }
}

async fn a_room_password_lockout_ends_with_its_window(engine: Engine) {
    let settings = [
        ("PALAVER_ROOM_PASSWORD_ATTEMPTS", "3"),
        ("PALAVER_ROOM_PASSWORD_WINDOW_SECS", SHORT_WINDOW),
        // Polling must not meet the command limit, whose refusal reads like the lockout's.
        ("PALAVER_WS_MESSAGE_LIMIT", "100000"),
    ];
    let Some(client) = Client::start_with(engine, &settings).await else {
        return;
    };
    let john = client.user("john_doe").await;
    let jane = client.user("jane_doe").await;
    let (status, body) = client
        .post_as(
            &john,
            "/api/rooms",
            json!({"name": "secret", "private": true, "password": ROOM_PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut guesser = WsClient::json(&client.server, &jane).await;
    // Locked out, the right password is refused untried too. Reading the history with it is the probe, since a join
    // with it would make jane a member, who needs no password.
    let mut refused_while_locked = false;
    for round in 0..LOCKOUT_ROUNDS {
        // Past the first round, failures of the one before may still count in the sliding window.
        lock_out_room(&mut guesser, 3, round == 0).await;
        let id = format!("probe-{round}");
        guesser
            .send_cmd(
                "get_messages",
                json!({"name": "secret", "password": ROOM_PASSWORD}),
                Some(&id),
            )
            .await;
        let answer = guesser.next_json().await;
        if answer["type"] == "error" {
            assert_eq!(
                answer,
                error_frame("rate_limited", RATE_LIMIT_EXCEEDED, &id)
            );
            refused_while_locked = true;
            break;
        }
        // The window ended between the two commands.
        assert_eq!(
            (&answer["type"], &answer["id"]),
            (&json!("history"), &json!(id)),
            "{answer}"
        );
    }
    assert!(
        refused_while_locked,
        "the right room password was never refused during a lockout ({LOCKOUT_ROUNDS} tries)"
    );
    assert_eq!(client.member_names(&john, "secret").await, ["john_doe"]);
    // Once the window has passed, the right password lets jane in.
    let deadline = tokio::time::Instant::now() + LOCKOUT_PATIENCE;
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    for attempt in 0.. {
        poll.tick().await;
        let id = format!("join-{attempt}");
        guesser
            .send_cmd(
                "join_room",
                json!({"name": "secret", "password": ROOM_PASSWORD}),
                Some(&id),
            )
            .await;
        let answer = guesser.next_json().await;
        if answer["type"] == "welcome" {
            assert_eq!(
                (&answer["room"], &answer["last_seq"], &answer["id"]),
                (&json!("secret"), &json!(0), &json!(id)),
                "{answer}"
            );
            break;
        }
        assert_eq!(
            answer,
            error_frame("rate_limited", RATE_LIMIT_EXCEEDED, &id)
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "still locked out {LOCKOUT_PATIENCE:?} after the lockout began"
        );
    }
    assert_eq!(
        client.member_names(&john, "secret").await,
        ["jane_doe", "john_doe"]
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Tokens.

/// How long the token of the expiry test lives, in seconds: long enough to open a socket with it before its `exp`
/// (whole seconds, so at least this minus one second after the login).
const SOCKET_TOKEN_TTL: &str = "5";

async fn a_token_expiring_on_an_open_socket_closes_it_with_1008(engine: Engine) {
    let Some(client) =
        Client::start_with(engine, &[("PALAVER_TOKEN_TTL_SECS", SOCKET_TOKEN_TTL)]).await
    else {
        return;
    };
    let token = client.user("john_doe").await;
    let exp = token_claims(&token)["exp"].as_i64().expect("an exp") as f64;
    let mut ws = WsClient::json(&client.server, &token).await;
    // The close is the event awaited: no sooner than the token's exp, and within the frame timeout after it.
    let wait = Duration::from_secs_f64((exp - unix_now()).max(0.0)) + FRAME_TIMEOUT;
    let frame = ws.next_frame_within(wait).await;
    let closed = unix_now();
    assert_eq!(
        frame,
        Some(Frame::Close(Some((1008, "token expired".to_owned())))),
        "the socket of a token whose exp passed"
    );
    assert!(
        closed >= exp,
        "closed {:.3} s before the token's exp",
        exp - closed
    );
    let (status, body) = raw_upgrade(
        &client.server,
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await;
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    assert_eq!(
        (status, body),
        (
            StatusCode::UNAUTHORIZED,
            error_body("token_expired", "the token has expired")
        )
    );
}

palaver_integration_tests::on_every_engine!(
    cookie_authenticated_changes_need_the_sessions_csrf_token,
    password_guessing_is_locked_out_per_account,
    credential_stuffing_from_one_address_is_locked_out,
    an_unknown_user_is_answered_exactly_like_a_wrong_password,
    a_login_lockout_ends_with_its_window,
    guessing_a_room_password_is_locked_out,
    a_room_password_lockout_ends_with_its_window,
);

// Token expiry does not depend on the database: this runs on the embedded one only.
palaver_integration_tests::on_sqlite_only!(a_token_expiring_on_an_open_socket_closes_it_with_1008);
