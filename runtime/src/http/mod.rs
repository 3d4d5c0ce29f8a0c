//! The HTTP API (PROTOCOL §1) as warp filters. Each route decodes its request, calls one handler and renders the
//! answer; the rules live in `palaver-handlers`.

pub mod accounts;
pub mod body;
pub mod health;
pub mod metrics;
pub mod rejection;
pub mod rooms;
pub mod search;
pub mod web;

use std::convert::Infallible;
use std::sync::Arc;

use http::HeaderMap;
use palaver_handlers::Error;
use warp::Filter;
use warp::reply::Response;

use crate::auth::Presented;
use crate::auth::client_ip::ClientIp;
use crate::context::AppContext;
use crate::render::http::error_response;

/// What a route accepts as credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteAuth {
    /// Anyone; credentials are not read.
    None,
    /// A login token: `Authorization: Bearer`, or the session cookie (which, on a route that changes state, needs
    /// the session's CSRF token too).
    Token,
    /// Anyone; a session cookie, when sent, is read (`GET /api/csrf` answers that session's token).
    OptionalSession,
    /// The `metrics_token` as a Bearer token when one is configured; the session cookie does not count.
    MetricsToken,
}

/// One route of [`routes`], as PROTOCOL §1.4 lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    pub method: http::Method,
    /// The path, with `{name}` for a room name segment.
    pub path: &'static str,
    /// Whether a successful request changes anything (and so, when a session cookie authenticates it, needs the
    /// CSRF token).
    pub changes_state: bool,
    pub auth: RouteAuth,
}

impl RouteInfo {
    /// Whether the session cookie can authenticate this route.
    pub fn takes_session_cookie(&self) -> bool {
        matches!(self.auth, RouteAuth::Token | RouteAuth::OptionalSession)
    }
}

const fn route(
    method: http::Method,
    path: &'static str,
    changes_state: bool,
    auth: RouteAuth,
) -> RouteInfo {
    RouteInfo {
        method,
        path,
        changes_state,
        auth,
    }
}

/// Every route of [`routes`] except the web client's files (`GET`/`HEAD` on `/` and `/static/…`, see [`web`]);
/// `GET /ws` is taken by the server before routing. Tests check this table against the router both ways and against
/// PROTOCOL §1.4, and the CSRF tests (`integration-tests/tests/csrf_routes.rs`) send every state-changing route the
/// session cookie can authenticate from it: a route added to one and not the others fails them.
pub const API_ROUTES: &[RouteInfo] = &[
    route(http::Method::POST, "/api/register", true, RouteAuth::None),
    route(http::Method::POST, "/api/login", true, RouteAuth::None),
    route(http::Method::POST, "/api/logout", true, RouteAuth::Token),
    route(http::Method::GET, "/api/me", false, RouteAuth::Token),
    route(
        http::Method::GET,
        "/api/csrf",
        false,
        RouteAuth::OptionalSession,
    ),
    route(http::Method::POST, "/api/ws-ticket", true, RouteAuth::Token),
    route(http::Method::GET, "/api/rooms", false, RouteAuth::Token),
    route(http::Method::POST, "/api/rooms", true, RouteAuth::Token),
    route(
        http::Method::DELETE,
        "/api/rooms/{name}",
        true,
        RouteAuth::Token,
    ),
    route(
        http::Method::GET,
        "/api/rooms/{name}/messages",
        false,
        RouteAuth::Token,
    ),
    route(
        http::Method::GET,
        "/api/rooms/{name}/members",
        false,
        RouteAuth::Token,
    ),
    route(http::Method::GET, "/api/search", false, RouteAuth::Token),
    route(
        http::Method::GET,
        "/metrics",
        false,
        RouteAuth::MetricsToken,
    ),
    route(http::Method::GET, "/healthz", false, RouteAuth::None),
    route(http::Method::GET, "/readyz", false, RouteAuth::None),
];

/// The answer of a route: its response, or its error rendered.
pub fn respond(result: Result<Response, Error>) -> Response {
    result.unwrap_or_else(|err| error_response(&err))
}

/// The credentials a request presents (see [`crate::auth`]).
fn presented() -> impl Filter<Extract = (Presented,), Error = Infallible> + Clone {
    warp::header::headers_cloned().map(|headers: HeaderMap| crate::auth::from_headers(&headers))
}

/// Every HTTP route (the API, the probes, the browser client), with JSON errors for everything unmatched. (The
/// server marks every response `nosniff`, these and the ones it answers itself.)
pub fn routes(
    ctx: Arc<AppContext>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let limit = ctx.settings.max_body_bytes;
    let with_ctx = warp::any().map(move || ctx.clone());

    let client_ip = warp::ext::optional::<ClientIp>();
    let register = warp::path!("api" / "register")
        .and(warp::post())
        .and(with_ctx.clone())
        .and(client_ip)
        .and(body::raw_json(limit))
        .then(accounts::register);
    let login = warp::path!("api" / "login")
        .and(warp::post())
        .and(with_ctx.clone())
        .and(client_ip)
        .and(body::raw_json(limit))
        .then(accounts::login);
    let logout = warp::path!("api" / "logout")
        .and(warp::post())
        .and(with_ctx.clone())
        .and(presented())
        .then(accounts::logout);
    let me = warp::path!("api" / "me")
        .and(warp::get())
        .and(with_ctx.clone())
        .and(presented())
        .then(accounts::me);
    let csrf = warp::path!("api" / "csrf")
        .and(warp::get())
        .and(with_ctx.clone())
        .and(presented())
        .then(accounts::csrf);
    let ws_ticket = warp::path!("api" / "ws-ticket")
        .and(warp::post())
        .and(with_ctx.clone())
        .and(presented())
        .then(accounts::ws_ticket);
    let room_list = warp::path!("api" / "rooms")
        .and(warp::get())
        .and(with_ctx.clone())
        .and(presented())
        .then(rooms::list);
    let room_create = warp::path!("api" / "rooms")
        .and(warp::post())
        .and(with_ctx.clone())
        .and(presented())
        .and(body::raw_json(limit))
        .then(rooms::create);
    let room_delete = warp::path!("api" / "rooms" / String)
        .and(warp::delete())
        .and(with_ctx.clone())
        .and(presented())
        .then(rooms::delete);
    let room_messages = warp::path!("api" / "rooms" / String / "messages")
        .and(warp::get())
        .and(with_ctx.clone())
        .and(presented())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::optional::<String>(
            rooms::ROOM_PASSWORD_HEADER,
        ))
        .then(rooms::messages);
    let room_members = warp::path!("api" / "rooms" / String / "members")
        .and(warp::get())
        .and(with_ctx.clone())
        .and(presented())
        .then(rooms::members);
    let search = warp::path!("api" / "search")
        .and(warp::get())
        .and(with_ctx.clone())
        .and(presented())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .then(search::search);
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_ctx.clone())
        .and(presented())
        .then(metrics::metrics);
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .then(health::healthz);
    let readyz = warp::path!("readyz")
        .and(warp::get())
        .and(with_ctx)
        .then(health::readyz);

    // Boxed in groups: one long chain of `or`s nests its future types past the compiler's recursion limit in
    // release builds.
    let accounts = register
        .or(login)
        .unify()
        .or(logout)
        .unify()
        .or(me)
        .unify()
        .or(csrf)
        .unify()
        .or(ws_ticket)
        .unify()
        .boxed();
    accounts
        .or(room_list)
        .unify()
        .or(room_create)
        .unify()
        .or(room_delete)
        .unify()
        .or(room_messages)
        .unify()
        .or(room_members)
        .unify()
        .or(search)
        .unify()
        .or(metrics)
        .unify()
        .or(healthz)
        .unify()
        .or(readyz)
        .unify()
        .or(web::routes())
        .unify()
        .recover(rejection::recover)
        .unify()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Method, StatusCode};
    use http_body_util::BodyExt as _;
    use tower_service::Service as _;

    /// Every method a probe tries on a path.
    const METHODS: [Method; 7] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
    ];

    /// A router over a fresh SQLite database, and the directory it lives in.
    async fn router() -> (
        impl FnMut(Method, &str) -> futures_util::future::BoxFuture<'static, (StatusCode, String)>,
        tempfile::TempDir,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let vars = [
            ("PALAVER_SQLITE_PATH", dir.path().join("palaver.db")),
            ("PALAVER_BCRYPT_COST", "4".into()),
        ]
        .map(|(key, value)| (key.to_owned(), value.display().to_string()));
        let settings = crate::Settings::load_from(vars).unwrap();
        let ctx = Arc::new(
            crate::server::build_context(settings, crate::shutdown::channel().1)
                .await
                .unwrap(),
        );
        let service = warp::service(routes(ctx));
        let call = move |method: Method, path: &str| {
            let request = http::Request::builder()
                .method(method)
                .uri(path)
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap();
            let mut service = service.clone();
            let answer: futures_util::future::BoxFuture<'static, (StatusCode, String)> =
                Box::pin(async move {
                    let response = service.call(request).await.unwrap();
                    let status = response.status();
                    let body = response.into_body().collect().await.unwrap().to_bytes();
                    (status, String::from_utf8_lossy(&body).into_owned())
                });
            answer
        };
        (call, dir)
    }

    /// The path of `pattern` with its room name filled in.
    fn concrete(pattern: &str) -> String {
        pattern.replace("{name}", "general")
    }

    /// Whether a route of `pattern` takes `path`: `{name}` stands for any one segment, and warp ignores one trailing
    /// slash.
    fn takes(pattern: &str, path: &str) -> bool {
        let path = path.strip_suffix('/').unwrap_or(path);
        let (pattern, path): (Vec<&str>, Vec<&str>) =
            (pattern.split('/').collect(), path.split('/').collect());
        pattern.len() == path.len()
            && pattern
                .iter()
                .zip(&path)
                .all(|(want, got)| want == got || (*want == "{name}" && !got.is_empty()))
    }

    /// Whether an answer is the router's own "nothing here": no such route, or not this method.
    fn unrouted(status: StatusCode, body: &str) -> bool {
        let code = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|body| body["code"].as_str().map(str::to_owned));
        match status {
            StatusCode::NOT_FOUND => code.as_deref() == Some("not_found"),
            StatusCode::METHOD_NOT_ALLOWED => true,
            _ => false,
        }
    }

    #[tokio::test]
    async fn the_route_table_is_the_router() {
        let (mut call, _dir) = router().await;
        for route in API_ROUTES {
            let path = concrete(route.path);
            let (status, body) = call(route.method.clone(), &path).await;
            assert!(
                !unrouted(status, &body),
                "{} {path} is in API_ROUTES but no route takes it: {status} {body}",
                route.method
            );
            assert!(
                API_ROUTES
                    .iter()
                    .filter(|other| (&other.method, other.path) == (&route.method, route.path))
                    .count()
                    == 1,
                "{} {} is listed twice",
                route.method,
                route.path
            );
        }

        // The other way round: every method on every path built from the words of the table, of PROTOCOL §1.4 and
        // of routes there might be one day, one to three segments under /api/ and one at the top, each also with a
        // trailing slash (which warp ignores). Whatever the router answers with anything but "no such route" or "not
        // this method" must be in the table.
        let documented = protocol_routes();
        let mut words: Vec<&str> = API_ROUTES
            .iter()
            .map(|route| route.path)
            .chain(
                documented
                    .iter()
                    .filter_map(|(route, ..)| route.split(' ').nth(1)),
            )
            .flat_map(|path| path.split('/'))
            .filter(|word| !word.is_empty())
            .collect();
        words.extend(PLAUSIBLE_WORDS);
        words.sort_unstable();
        words.dedup();
        // (`/` is the web client's page, which this table leaves to `web`.)
        let mut patterns: Vec<String> = vec!["/api".into()];
        for first in &words {
            patterns.push(format!("/{first}"));
            patterns.push(format!("/api/{first}"));
            for second in &words {
                patterns.push(format!("/api/{first}/{second}"));
            }
        }
        for parent in ["rooms/{name}", "users/{name}", "me"] {
            for last in &words {
                patterns.push(format!("/api/{parent}/{last}"));
            }
        }
        let mut probed = 0;
        for pattern in &patterns {
            let path = concrete(pattern);
            for path in [path.clone(), format!("{path}/")] {
                for method in METHODS {
                    let (status, body) = call(method.clone(), &path).await;
                    let listed = API_ROUTES
                        .iter()
                        .any(|route| route.method == method && takes(route.path, &path));
                    assert_eq!(
                        !unrouted(status, &body),
                        listed,
                        "{method} {path}: {status} {body} (listed in API_ROUTES: {listed})"
                    );
                    probed += 1;
                }
            }
        }
        assert!(probed > 10_000, "only {probed} requests probed");
    }

    /// Path segments a route might be given that no route has today.
    const PLAUSIBLE_WORDS: [&str; 32] = [
        "{name}", "admin", "audit", "ban", "config", "debug", "email", "export", "files", "health",
        "history", "invite", "kick", "leave", "join", "message", "owner", "password", "profile",
        "ready", "refresh", "room", "search", "sessions", "settings", "status", "ticket", "token",
        "upload", "user", "users", "ws",
    ];

    /// The `METHOD /path` rows of PROTOCOL §1.4's route table, with their auth and CSRF columns.
    fn protocol_routes() -> Vec<(String, String, String)> {
        let protocol =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md"))
                .unwrap();
        let section = protocol
            .split("### 1.4 Routes")
            .nth(1)
            .and_then(|rest| rest.split("\n### ").next())
            .expect("PROTOCOL has §1.4");
        let mut rows = Vec::new();
        for line in section.lines() {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let Some(route) = cells
                .get(1)
                .and_then(|cell| cell.strip_prefix('`')?.strip_suffix('`'))
            else {
                continue;
            };
            let Some((method, path)) = route.split_once(' ') else {
                continue;
            };
            if route.contains('`') || method.parse::<Method>().is_err() || cells.len() < 4 {
                continue;
            }
            rows.push((
                format!("{method} {path}"),
                cells[2].to_owned(),
                cells[3].to_owned(),
            ));
        }
        rows
    }

    #[test]
    fn the_route_table_is_protocol_1_4() {
        let documented = protocol_routes();
        let mut listed: Vec<String> = API_ROUTES
            .iter()
            .map(|route| format!("{} {}", route.method, route.path))
            .collect();
        // Served by the server before routing (PROTOCOL §2).
        listed.push("GET /ws".into());
        let mut names: Vec<&str> = documented
            .iter()
            .map(|(route, ..)| route.as_str())
            .collect();
        names.sort_unstable();
        listed.sort_unstable();
        assert_eq!(names, listed);

        for route in API_ROUTES {
            let name = format!("{} {}", route.method, route.path);
            let (_, auth, csrf) = documented
                .iter()
                .find(|(documented, ..)| *documented == name)
                .expect("documented");
            let documented_auth = if auth.starts_with("token") {
                RouteAuth::Token
            } else if auth == "none, or session cookie" {
                RouteAuth::OptionalSession
            } else if auth == "none, or `metrics_token`" {
                RouteAuth::MetricsToken
            } else {
                assert_eq!(auth, "none", "{name}");
                RouteAuth::None
            };
            assert_eq!(route.auth, documented_auth, "{name}");
            let csrf_checked = route.changes_state && route.takes_session_cookie();
            assert_eq!(csrf == "cookie only", csrf_checked, "{name}: CSRF {csrf}");
            assert!(
                !(route.method == Method::GET && route.changes_state),
                "{name}: a GET never changes state"
            );
        }
    }
}
