//! HTTP error responses: every refusal the server answers over HTTP, the WebSocket handshake's included, is an
//! [`Error`] rendered here as `{"error": <sentence>, "code": <code>, "field"?: <name>}` with its status and headers.

use http::{HeaderValue, StatusCode};
use palaver_handlers::{Error, ErrorKind};
use serde::Serialize;
use warp::Reply;
use warp::reply::Response;

/// The JSON body of every error answer.
#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

/// The HTTP status for a kind of error.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Invalid => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::LengthRequired => StatusCode::LENGTH_REQUIRED,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorKind::UpgradeRequired => StatusCode::UPGRADE_REQUIRED,
        ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The response for `err`; hidden details go to the log, never to the client. A 401 says the scheme it wants
/// (`WWW-Authenticate: Bearer`), a refusal with a retry time says when (`Retry-After`, whole seconds, at least 1), and
/// a handshake of the wrong version says the one spoken (`Sec-WebSocket-Version: 13`).
pub fn error_response(err: &Error) -> Response {
    if let Some(detail) = err.log_detail() {
        tracing::error!(code = err.code(), detail, "request failed");
    }
    let text = err.to_string();
    let body = ErrorBody {
        error: &text,
        code: err.code(),
        field: err.field(),
    };
    let mut response =
        warp::reply::with_status(warp::reply::json(&body), status_of(err.kind())).into_response();
    let headers = response.headers_mut();
    if err.kind() == ErrorKind::Unauthenticated {
        headers.insert(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer"),
        );
    }
    match err {
        Error::TooManyRequests { retry_after } => {
            let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            headers.insert(http::header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        Error::WrongWebSocketVersion => {
            headers.insert(
                http::header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
        }
        _ => {}
    }
    response
}

/// The seed's answer to a WebSocket request without credentials: 401 with [`Error::MissingCredentials`]'s sentence as
/// a plain-text body (the only error body that is not JSON, kept for the seed's clients).
pub fn seed_unauthorized() -> Response {
    let mut response = warp::reply::with_status(
        Error::MissingCredentials.to_string(),
        StatusCode::UNAUTHORIZED,
    )
    .into_response();
    response.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn body(response: Response) -> serde_json::Value {
        let bytes = http_body_util::BodyExt::collect(response.into_body())
            .await
            .expect("a body")
            .to_bytes();
        serde_json::from_slice(&bytes).expect("a JSON body")
    }

    #[tokio::test]
    async fn errors_render_their_status_code_text_and_field() {
        let response = error_response(&Error::UsernameTaken);
        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert_eq!(
            body(response).await,
            serde_json::json!({"error": "username is already taken", "code": "conflict", "field": "username"})
        );
        let response = error_response(&Error::CsrfFailed);
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(body(response).await["code"], "csrf_failed");
    }

    #[test]
    fn refusals_carry_the_headers_that_say_what_to_do() {
        let response = error_response(&Error::TooManyRequests {
            retry_after: Duration::from_millis(1500),
        });
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "2");
        let response = error_response(&Error::TooManyRequests {
            retry_after: Duration::ZERO,
        });
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "1");
        let response = error_response(&Error::InvalidTicket);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[http::header::WWW_AUTHENTICATE], "Bearer");
        let response = error_response(&Error::WrongWebSocketVersion);
        assert_eq!(response.status(), StatusCode::UPGRADE_REQUIRED);
        assert_eq!(
            response.headers()[http::header::SEC_WEBSOCKET_VERSION],
            "13"
        );
        let response = seed_unauthorized();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
}
