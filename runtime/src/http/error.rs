//! Turning handler errors and warp rejections into the protocol's JSON errors: `{"error": …, "code": …}`.

use std::convert::Infallible;

use http::StatusCode;
use palaver_handlers::{Error, ErrorKind};
use serde::Serialize;
use warp::reply::Response;
use warp::{Rejection, Reply};

/// The JSON body of every error answer.
#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

/// An error response with `status`, human sentence `error` and stable `code`.
pub fn json_error(status: StatusCode, error: &str, code: &str, field: Option<&str>) -> Response {
    let body = warp::reply::json(&ErrorBody { error, code, field });
    warp::reply::with_status(body, status).into_response()
}

/// The HTTP status for a kind of handler error.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Invalid => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The response for a handler error; hidden details go to the log, never to the client.
pub fn error_response(err: &Error) -> Response {
    if let Some(detail) = err.log_detail() {
        tracing::error!(code = err.code(), detail, "request failed");
    }
    let mut response = json_error(
        status_of(err.kind()),
        &err.to_string(),
        err.code(),
        err.field(),
    );
    if err.kind() == ErrorKind::Unauthenticated {
        response.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer"),
        );
    }
    response
}

/// 429 with `Retry-After` (whole seconds, at least 1).
pub fn too_many_requests(retry_after: std::time::Duration) -> Response {
    let mut response = json_error(
        StatusCode::TOO_MANY_REQUESTS,
        "too many requests; retry later",
        "rate_limited",
        None,
    );
    let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    response.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from(seconds.max(1)),
    );
    response
}

/// Answers every request no route took with a JSON error instead of warp's plain text.
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    let response = if rejection.is_not_found() {
        json_error(StatusCode::NOT_FOUND, "no such route", "not_found", None)
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body is too large",
            "payload_too_large",
            None,
        )
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        json_error(
            StatusCode::LENGTH_REQUIRED,
            "a Content-Length header is required",
            "length_required",
            None,
        )
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed on this route",
            "method_not_allowed",
            None,
        )
    } else {
        tracing::debug!(?rejection, "unhandled rejection");
        json_error(
            StatusCode::BAD_REQUEST,
            "the request could not be understood",
            "invalid_request",
            None,
        )
    };
    Ok(response)
}
