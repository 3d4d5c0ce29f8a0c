//! Requests no route took: warp's rejections answered with the protocol's JSON errors instead of warp's plain text.

use std::convert::Infallible;

use palaver_handlers::Error;
use warp::Rejection;
use warp::reply::Response;

use crate::render::http::error_response;

/// The error a rejection stands for.
fn error_of(rejection: &Rejection) -> Error {
    if rejection.is_not_found() {
        Error::NoSuchRoute
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        Error::PayloadTooLarge
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        Error::LengthRequired
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        Error::MethodNotAllowed
    } else {
        tracing::debug!(?rejection, "unhandled rejection");
        Error::BadRequest
    }
}

/// Answers every request no route took.
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    Ok(error_response(&error_of(&rejection)))
}
