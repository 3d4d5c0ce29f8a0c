//! The browser client: the files under `runtime/web/`, embedded in the binary (no file is read at run time, so the
//! binary is the whole deployment) and served at `/` and `/static/…` with headers that keep a page from doing more
//! than its own scripts say: a strict Content-Security-Policy (no inline script, no other origin), no MIME sniffing,
//! no framing, no referrer. Files carry a content hash as ETag and are revalidated on each use (`no-cache`), since
//! their names do not change between releases.

use std::sync::LazyLock;

use http::{HeaderValue, StatusCode, header};
use sha2::{Digest, Sha256};
use warp::Filter;
use warp::reply::Response;

use crate::render::http::error_response;
use palaver_handlers::Error;

/// The Content-Security-Policy of every client response: scripts, styles and connections (the API and the
/// WebSocket) from this origin only; no plugins, frames, base-URI games or foreign form targets.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'self'";

/// One embedded file.
struct Asset {
    /// The path it is served at.
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

macro_rules! asset {
    ($path:literal, $file:literal, $content_type:expr) => {
        Asset {
            path: $path,
            content_type: $content_type,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/", $file)),
        }
    };
}

/// Every file of the client. A new file under `runtime/web/` is served once it is listed here (a test checks that
/// every file the page refers to is).
static ASSETS: &[Asset] = &[
    asset!("/", "index.html", HTML),
    asset!("/static/app.css", "app.css", CSS),
    asset!("/static/favicon.svg", "favicon.svg", SVG),
    asset!("/static/js/api.js", "js/api.js", JS),
    asset!("/static/js/auth.js", "js/auth.js", JS),
    asset!("/static/js/chat.js", "js/chat.js", JS),
    asset!("/static/js/connection.js", "js/connection.js", JS),
    asset!("/static/js/direct.js", "js/direct.js", JS),
    asset!("/static/js/dom.js", "js/dom.js", JS),
    asset!("/static/js/main.js", "js/main.js", JS),
    asset!("/static/js/message-view.js", "js/message-view.js", JS),
    asset!("/static/js/notify.js", "js/notify.js", JS),
    asset!("/static/js/outbox.js", "js/outbox.js", JS),
    asset!("/static/js/room-state.js", "js/room-state.js", JS),
    asset!("/static/js/search.js", "js/search.js", JS),
    asset!("/static/js/sidebar.js", "js/sidebar.js", JS),
];

/// The quoted ETag of each asset (the first 16 bytes of its SHA-256), computed once.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let digest = Sha256::digest(asset.body);
            let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
            format!("\"{hex}\"")
        })
        .collect()
});

/// `GET`/`HEAD /` and `/static/…`: the client's files. Paths that are not files fall through (404 later); other
/// methods on a file's path are answered 405.
pub fn routes() -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path::full()
        .and(warp::method())
        .and(warp::header::optional::<String>("if-none-match"))
        .and_then(
            |path: warp::path::FullPath, method: http::Method, if_none_match: Option<String>| async move {
                if !ASSETS.iter().any(|asset| asset.path == path.as_str()) {
                    return Err(warp::reject::not_found());
                }
                if method != http::Method::GET && method != http::Method::HEAD {
                    return Ok(error_response(&Error::WebClientNeedsGet));
                }
                serve(path.as_str(), if_none_match.as_deref()).ok_or_else(warp::reject::not_found)
            },
        )
}

/// The response for `path`, or `None` when no asset lives there.
fn serve(path: &str, if_none_match: Option<&str>) -> Option<Response> {
    let index = ASSETS.iter().position(|asset| asset.path == path)?;
    let asset = &ASSETS[index];
    let etag = &ETAGS[index];
    let mut response = if if_none_match.is_some_and(|header| etag_matches(header, etag)) {
        let mut response = Response::new(Default::default());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else {
        let mut response = Response::new(asset.body.into());
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        response
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    add_security_headers(headers);
    Some(response)
}

/// Whether an `If-None-Match` value names `etag` (a list, weak validators, or `*`).
fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

/// The headers every client response carries.
fn add_security_headers(headers: &mut http::HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
}

/// Adds `X-Content-Type-Options: nosniff` to any response, so no browser guesses a type the server did not send.
pub fn nosniff(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asset(path: &str) -> &'static Asset {
        ASSETS
            .iter()
            .find(|asset| asset.path == path)
            .unwrap_or_else(|| panic!("{path} is not served"))
    }

    fn text(path: &str) -> &'static str {
        std::str::from_utf8(asset(path).body).expect("the client's files are UTF-8")
    }

    /// The `/static/…` paths a file refers to: `src="…"`/`href="…"` in HTML, `from './x.js'` in modules.
    fn references(path: &str) -> Vec<String> {
        let body = text(path);
        let mut found = Vec::new();
        for quote in ["src=\"", "href=\""] {
            for piece in body.split(quote).skip(1) {
                let target = piece.split('"').next().unwrap_or("");
                if target.starts_with("/static/") {
                    found.push(target.to_owned());
                }
            }
        }
        for piece in body.split(" from '").skip(1) {
            let target = piece.split('\'').next().unwrap_or("");
            if let Some(name) = target.strip_prefix("./") {
                found.push(format!("/static/js/{name}"));
            }
        }
        found
    }

    #[test]
    fn every_file_the_page_refers_to_is_served_with_its_type() {
        let mut seen = vec!["/".to_owned()];
        let mut queue = vec!["/".to_owned()];
        while let Some(path) = queue.pop() {
            for target in references(&path) {
                if !seen.contains(&target) {
                    let served = asset(&target);
                    let expected = match target.rsplit('.').next() {
                        Some("js") => JS,
                        Some("css") => CSS,
                        Some("svg") => SVG,
                        other => panic!("unexpected kind of file {other:?}"),
                    };
                    assert_eq!(served.content_type, expected, "{target}");
                    if expected == JS {
                        queue.push(target.clone());
                    }
                    seen.push(target);
                }
            }
        }
        for asset in ASSETS {
            assert!(
                seen.iter().any(|path| path == asset.path),
                "{} is embedded but nothing refers to it",
                asset.path
            );
        }
    }

    #[test]
    fn scripts_never_parse_markup() {
        // User text must reach the page as text: no API that parses a string as HTML appears in the client.
        for asset in ASSETS.iter().filter(|asset| asset.content_type == JS) {
            let body = std::str::from_utf8(asset.body).expect("UTF-8");
            for sink in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
                "new Function",
                "createContextualFragment",
            ] {
                assert!(!body.contains(sink), "{} uses {sink}", asset.path);
            }
        }
        assert!(
            !text("/").contains(" style=") && !text("/").contains("<script>"),
            "no inline style or script: the CSP forbids them"
        );
    }

    #[test]
    fn responses_carry_the_security_headers_and_revalidate() {
        let response = serve("/static/js/main.js", None).expect("served");
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert_eq!(headers[header::CONTENT_TYPE], JS);
        assert_eq!(
            headers[header::CONTENT_SECURITY_POLICY],
            CONTENT_SECURITY_POLICY
        );
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
        let etag = headers[header::ETAG].to_str().expect("ASCII").to_owned();
        assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() == 34);

        for (if_none_match, status) in [
            (etag.clone(), StatusCode::NOT_MODIFIED),
            (format!("W/{etag}"), StatusCode::NOT_MODIFIED),
            (format!("\"other\", {etag}"), StatusCode::NOT_MODIFIED),
            ("*".to_owned(), StatusCode::NOT_MODIFIED),
            ("\"other\"".to_owned(), StatusCode::OK),
        ] {
            let response = serve("/static/js/main.js", Some(&if_none_match)).expect("served");
            assert_eq!(response.status(), status, "If-None-Match: {if_none_match}");
            assert_eq!(response.headers()[header::ETAG], etag.as_str());
        }
        assert!(serve("/static/js/missing.js", None).is_none());
        assert!(serve("/static/js/../../Cargo.toml", None).is_none());
    }

    #[test]
    fn the_policy_allows_no_inline_script() {
        let script_src = CONTENT_SECURITY_POLICY
            .split(';')
            .map(str::trim)
            .find(|directive| directive.starts_with("script-src"))
            .expect("a script-src directive");
        assert_eq!(script_src, "script-src 'self'");
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
    }
}
