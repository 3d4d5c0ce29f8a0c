//! The browser client is served by the binary itself: `/` and its modules under `/static/…`, each with the right type
//! and the headers that keep a page to its own scripts; every other response says `nosniff` too.

use palaver_integration_tests::api::Client;
use palaver_integration_tests::{Engine, TestServer};
use reqwest::StatusCode;
use reqwest::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, HeaderMap, IF_NONE_MATCH,
    REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};

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
    for path in [
        "/static/js/missing.js",
        "/static/../Cargo.toml",
        "/index.html",
    ] {
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
