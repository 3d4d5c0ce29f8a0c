//! CSRF on every route that changes state and that the session cookie can authenticate, taken from the server's own
//! route table (`palaver_runtime::http::API_ROUTES`, which a unit test keeps equal to the router): a route added
//! there is sent here without anyone having to remember it. Each is refused with exactly `403 csrf_failed` and
//! changes nothing without the session's CSRF token, and succeeds with it.

use palaver_integration_tests::Engine;
use palaver_integration_tests::api::{Client, PASSWORD, read};
use palaver_runtime::http::{API_ROUTES, RouteInfo};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A browser's session: the token, the `Cookie` header it sends (session and CSRF cookies), and the CSRF token.
struct Session {
    token: String,
    cookies: String,
    csrf: String,
}

/// Logs `username` in as a browser does and keeps the cookies the login set.
async fn browser_login(client: &Client, username: &str) -> Session {
    let response = client
        .http
        .post(client.server.url("/api/login"))
        .json(&json!({"username": username, "password": PASSWORD}))
        .send()
        .await
        .expect("request sent");
    let cookie = |name: &str| {
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find_map(|cookie| {
                let value = cookie.strip_prefix(name)?.strip_prefix('=')?;
                Some(value.split(';').next().unwrap_or("").to_owned())
            })
            .unwrap_or_else(|| panic!("login sets {name}"))
    };
    let (session, csrf) = (cookie("palaver_session"), cookie("palaver_csrf"));
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token"], session.as_str());
    Session {
        cookies: format!("palaver_session={session}; palaver_csrf={csrf}"),
        token: session,
        csrf,
    }
}

/// A request that `route` would carry out: its path and body. Room routes get a room of their own, made beforehand
/// with the Bearer token.
async fn call_for(
    client: &Client,
    route: &RouteInfo,
    n: usize,
    token: &str,
) -> (String, Option<Value>) {
    match (route.method.as_str(), route.path) {
        ("POST", "/api/logout") | ("POST", "/api/ws-ticket") => (route.path.to_owned(), None),
        ("POST", "/api/rooms") => (
            route.path.to_owned(),
            Some(json!({"name": format!("created {n}")})),
        ),
        ("DELETE", "/api/rooms/{name}") => {
            let name = format!("doomed {n}");
            let (status, body) = client
                .post_as(token, "/api/rooms", json!({"name": name}))
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            (
                route.path.replace("{name}", &name.replace(' ', "%20")),
                None,
            )
        }
        (method, path) => panic!(
            "{method} {path} changes state and takes the session cookie: say here how to call it, so its CSRF \
             check is tested"
        ),
    }
}

/// Sends the request with the session's cookies (`cookies`), and `csrf_header` as `X-CSRF-Token` when given.
async fn send(
    client: &Client,
    route: &RouteInfo,
    (path, body): &(String, Option<Value>),
    cookies: &str,
    csrf_header: Option<&str>,
) -> (StatusCode, Value) {
    let method = reqwest::Method::from_bytes(route.method.as_str().as_bytes()).expect("a method");
    let mut request = client
        .http
        .request(method, client.server.url(path))
        .header("cookie", cookies);
    if let Some(body) = body {
        request = request.json(body);
    }
    if let Some(token) = csrf_header {
        request = request.header("x-csrf-token", token);
    }
    read(request.send().await.expect("request sent")).await
}

/// What the account can see of the state a refused request might have changed: its session works, and its rooms.
async fn observable_state(client: &Client, token: &str) -> (StatusCode, Value) {
    let (me, _) = client.get("/api/me", Some(token)).await;
    let (_, rooms) = client.get("/api/rooms", Some(token)).await;
    (me, rooms)
}

async fn every_state_changing_cookie_route_needs_the_sessions_csrf_token(engine: Engine) {
    let Some(client) = Client::start(engine).await else {
        return;
    };
    client.register("csrf_user").await;
    let routes: Vec<&RouteInfo> = API_ROUTES
        .iter()
        .filter(|route| route.changes_state && route.takes_session_cookie())
        .collect();
    assert!(routes.len() >= 4, "{routes:?}");
    let refused = json!({
        "error": "this request needs the session's CSRF token in X-CSRF-Token",
        "code": "csrf_failed",
    });
    for (n, route) in routes.into_iter().enumerate() {
        let name = format!("{} {}", route.method, route.path);
        // A session of its own: the logout ends the one it is made with.
        let session = browser_login(&client, "csrf_user").await;
        let call = call_for(&client, route, n, &session.token).await;
        let before = observable_state(&client, &session.token).await;
        assert_eq!(before.0, StatusCode::OK, "{name}");

        let session_cookie_only = format!("palaver_session={}", session.token);
        for (case, cookies, header) in [
            ("without X-CSRF-Token", session.cookies.as_str(), None),
            (
                "with a wrong X-CSRF-Token",
                session.cookies.as_str(),
                Some("0".repeat(64)),
            ),
            (
                "with the token in X-CSRF-Token but no palaver_csrf cookie",
                session_cookie_only.as_str(),
                Some(session.csrf.clone()),
            ),
        ] {
            let (status, body) = send(&client, route, &call, cookies, header.as_deref()).await;
            assert_eq!(
                (status, &body),
                (StatusCode::FORBIDDEN, &refused),
                "{name} {case}"
            );
        }
        assert_eq!(
            observable_state(&client, &session.token).await,
            before,
            "{name}: a refused request changed nothing"
        );

        let (status, body) =
            send(&client, route, &call, &session.cookies, Some(&session.csrf)).await;
        assert!(
            status.is_success(),
            "{name} with the session's CSRF token: {status} {body}"
        );
    }
}

palaver_integration_tests::on_sqlite_only!(
    every_state_changing_cookie_route_needs_the_sessions_csrf_token,
);
