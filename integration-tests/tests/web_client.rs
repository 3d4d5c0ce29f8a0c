//! The browser client is served by the binary itself: `/` and its modules under `/static/…`, each with the right type
//! and the headers that keep a page to its own scripts; every other response says `nosniff` too. Paths that climb out
//! of `/static/`, sent on a raw socket as an attacker would (an HTTP client resolves `..` before sending), reach no
//! file.

use std::time::Duration;

use palaver_integration_tests::api::Client;
use palaver_integration_tests::{Engine, TestServer};
use reqwest::StatusCode;
use reqwest::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, HeaderMap, IF_NONE_MATCH,
    REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn header(headers: &HeaderMap, name: impl reqwest::header::AsHeaderName) -> &str {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
}

/// The headers every file of the client carries.
fn assert_locked_down(path: &str, headers: &HeaderMap) {
    let policy = header(headers, CONTENT_SECURITY_POLICY);
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(
            policy.contains(directive),
            "{path}: CSP lacks {directive}: {policy}"
        );
    }
    assert!(
        !policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"),
        "{path}: {policy}"
    );
    assert_eq!(header(headers, X_CONTENT_TYPE_OPTIONS), "nosniff", "{path}");
    assert_eq!(header(headers, REFERRER_POLICY), "no-referrer", "{path}");
    assert_eq!(header(headers, X_FRAME_OPTIONS), "DENY", "{path}");
    assert_eq!(header(headers, CACHE_CONTROL), "no-cache", "{path}");
    assert!(!header(headers, ETAG).is_empty(), "{path}: an ETag");
}

#[tokio::test]
async fn the_page_and_its_modules_are_served_with_their_types_and_security_headers() {
    let server = TestServer::start(Engine::Sqlite)
        .await
        .expect("SQLite needs nothing outside the process");
    let http = reqwest::Client::new();
    for (path, content_type, marker) in [
        ("/", "text/html; charset=utf-8", "<script type=\"module\""),
        (
            "/static/js/main.js",
            "text/javascript; charset=utf-8",
            "import",
        ),
        (
            "/static/js/connection.js",
            "text/javascript; charset=utf-8",
            "palaver.v1.json",
        ),
        ("/static/app.css", "text/css; charset=utf-8", "{"),
        ("/static/favicon.svg", "image/svg+xml", "<svg"),
    ] {
        let response = http
            .get(server.url(path))
            .send()
            .await
            .expect("request sent");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers().clone();
        assert_eq!(header(&headers, CONTENT_TYPE), content_type, "{path}");
        assert_locked_down(path, &headers);
        let body = response.text().await.expect("a body");
        assert!(body.contains(marker), "{path} does not contain {marker}");

        // A revalidation with the ETag costs no body.
        let again = http
            .get(server.url(path))
            .header(IF_NONE_MATCH, header(&headers, ETAG))
            .send()
            .await
            .expect("request sent");
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert_eq!(header(again.headers(), ETAG), header(&headers, ETAG));
        assert!(again.bytes().await.expect("a body").is_empty());
    }
    server.stop().await;
}

#[tokio::test]
async fn unknown_files_are_not_found_and_every_response_says_nosniff() {
    let Some(client) = Client::start(Engine::Sqlite).await else {
        return;
    };
    let http = &client.http;
    // (`/static/../Cargo.toml` would be sent as `/Cargo.toml`: traversal is tried on a raw socket below.)
    for path in ["/static/js/missing.js", "/index.html", "/Cargo.toml"] {
        let response = http
            .get(client.server.url(path))
            .send()
            .await
            .expect("request sent");
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            header(response.headers(), X_CONTENT_TYPE_OPTIONS),
            "nosniff",
            "{path}"
        );
    }
    let post = http
        .post(client.server.url("/"))
        .send()
        .await
        .expect("request sent");
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);

    // API answers, good and bad, carry it too.
    let me = http
        .get(client.server.url("/api/me"))
        .send()
        .await
        .expect("request sent");
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(me.headers(), X_CONTENT_TYPE_OPTIONS), "nosniff");
    let health = http
        .get(client.server.url("/healthz"))
        .send()
        .await
        .expect("request sent");
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(header(health.headers(), X_CONTENT_TYPE_OPTIONS), "nosniff");
    client.server.stop().await;
}

/// How long a raw exchange may take: generous, it only bounds a hang.
const PATIENCE: Duration = Duration::from_secs(30);

/// Sends `GET <target>` exactly as written (no client resolves `..` or decodes anything) with `Connection: close`,
/// and returns the status and the whole answer as text.
async fn raw_get(server: &TestServer, target: &str) -> (u16, String) {
    let exchange = async {
        let mut tcp = TcpStream::connect(server.addr()).await.expect("connect");
        let request =
            format!("GET {target} HTTP/1.1\r\nHost: palaver\r\nConnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes())
            .await
            .expect("request sent");
        let mut answer = Vec::new();
        tcp.read_to_end(&mut answer).await.expect("an answer");
        answer
    };
    let answer = tokio::time::timeout(PATIENCE, exchange)
        .await
        .expect("the server answers and closes in time");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("{target}: no status line in {answer:?}"));
    (status, answer)
}

#[tokio::test]
async fn paths_climbing_out_of_static_reach_no_file_even_sent_raw() {
    let server = TestServer::start(Engine::Sqlite)
        .await
        .expect("SQLite needs nothing outside the process");
    // A file next to the server's working directory and one at the root, in case anything ever resolved them.
    let markers = ["[workspace]", "[package]", "root:x:0:0"];
    for target in [
        "/static/../Cargo.toml",
        "/static/%2e%2e/Cargo.toml",
        "/static/%2E%2E/Cargo.toml",
        "/static/..%2fCargo.toml",
        "/static/..%2FCargo.toml",
        "/static/..\\Cargo.toml",
        "/static/..%5cCargo.toml",
        "/static/%2e%2e%2fCargo.toml",
        "/static/%252e%252e/Cargo.toml",
        "/static/js/../../Cargo.toml",
        "/static/js/../../runtime/Cargo.toml",
        "/static/./../Cargo.toml",
        "/static//../Cargo.toml",
        "/../Cargo.toml",
        "/static/js/../../../../../../etc/passwd",
        "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        // A file that exists, reached by a detour: not served either (only the exact path is).
        "/static/js/../app.css",
    ] {
        let (status, answer) = raw_get(&server, target).await;
        assert!(
            status == 404 || status == 400,
            "{target}: {status}\n{answer}"
        );
        if status == 404 {
            assert!(
                answer.ends_with(r#"{"error":"no such route","code":"not_found"}"#),
                "{target}: {answer}"
            );
        }
        for marker in markers {
            assert!(!answer.contains(marker), "{target} served a file: {answer}");
        }
    }
    // The same server serves the real file at its own path.
    let (status, answer) = raw_get(&server, "/static/app.css").await;
    assert_eq!(status, 200, "{answer}");
    server.stop().await;
}
