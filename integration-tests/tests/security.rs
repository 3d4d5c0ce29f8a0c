//! Attacks on the HTTP API and what stops them: CSRF on cookie-authenticated changes, password guessing, request
//! floods from one address, and a spoofed `X-Forwarded-For`. Each test asserts the refusal and that nothing changed.

use palaver_integration_tests::api::{Client, PASSWORD, assert_error, read};
use palaver_integration_tests::{Engine, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

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
    assert_error(status, &body, StatusCode::FORBIDDEN, "csrf_failed");
    let (status, body) = read(create(Some("0".repeat(64)), "wrong token").await.unwrap()).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "csrf_failed");
    // Another session's token (a second login of the same user) does not pass for this one.
    let (_, _, other_csrf) = browser_login_again(&client, "john_doe").await;
    let (status, body) = read(create(Some(other_csrf), "other session").await.unwrap()).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "csrf_failed");
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
    assert_eq!(logout.unwrap().status(), StatusCode::FORBIDDEN);
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
        assert_error(
            status,
            &body,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        );
    }
    // The rest of a hundred guesses are all refused untried.
    for _ in 5..100 {
        let (status, body) = attempt("wrong horse battery").await;
        assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
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
        assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
        assert!(body.get("token").is_none());
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
        let (status, _) = client
            .post(
                "/api/login",
                json!({"username": victim, "password": "hunter2hunter2"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // The address has used its failures: any account, even with the right password, waits.
    let (status, body) = client
        .post(
            "/api/login",
            json!({"username": "john_doe", "password": PASSWORD}),
        )
        .await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
}

async fn a_flood_from_one_address_gets_429_and_a_spoofed_forwarded_for_does_not_help(
    engine: Engine,
) {
    let extra = [("PALAVER_HTTP_REQUESTS_PER_MINUTE", "5")];
    let Some(server) = TestServer::start_with(engine, &extra).await else {
        return;
    };
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for n in 0..8 {
        // A different claimed address each time: the server does not trust this peer as a proxy.
        let response = http
            .get(server.url("/api/rooms"))
            .header("x-forwarded-for", format!("198.51.100.{n}"))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(response.headers().contains_key("retry-after"));
            assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        }
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429, 429]);
    // Probes are never limited, nor the browser client's files (a page load asks for many).
    for path in ["/healthz", "/", "/static/js/main.js", "/static/app.css"] {
        let response = http.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
}

async fn behind_a_trusted_proxy_each_client_has_its_own_budget(engine: Engine) {
    let extra = [
        ("PALAVER_HTTP_REQUESTS_PER_MINUTE", "2"),
        ("PALAVER_TRUSTED_PROXIES", "127.0.0.1"),
    ];
    let Some(server) = TestServer::start_with(engine, &extra).await else {
        return;
    };
    let http = reqwest::Client::new();
    let status_for = |client: &'static str| {
        http.get(server.url("/api/rooms"))
            .header("x-forwarded-for", client)
            .send()
    };
    for _ in 0..2 {
        assert_eq!(
            status_for("198.51.100.1").await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        status_for("198.51.100.1").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        status_for("198.51.100.2").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn registrations_are_limited_per_address(engine: Engine) {
    let extra = [("PALAVER_REGISTRATIONS_PER_HOUR", "2")];
    let Some(server) = TestServer::start_with(engine, &extra).await else {
        return;
    };
    let client = Client {
        server,
        http: reqwest::Client::new(),
    };
    client.register("user_one").await;
    client.register("user_two").await;
    let body: Value =
        json!({"username": "user_three", "email": "three@example.com", "password": PASSWORD});
    let (status, answer) = client.post("/api/register", body).await;
    assert_error(
        status,
        &answer,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    );
    let (status, _) = client
        .post(
            "/api/login",
            json!({"username": "user_three", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "nothing was stored");
}

palaver_integration_tests::on_every_engine!(
    cookie_authenticated_changes_need_the_sessions_csrf_token,
    password_guessing_is_locked_out_per_account,
    credential_stuffing_from_one_address_is_locked_out,
    a_flood_from_one_address_gets_429_and_a_spoofed_forwarded_for_does_not_help,
    behind_a_trusted_proxy_each_client_has_its_own_budget,
    registrations_are_limited_per_address,
);
