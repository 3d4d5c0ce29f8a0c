//! JSON request bodies: a size limit, a JSON content type (a cross-site form cannot send one without a CORS
//! preflight), and decoding errors that say what was wrong.

use bytes::Bytes;
use palaver_handlers::Error;
use serde::de::DeserializeOwned;
use warp::Filter;

/// The raw body and its declared content type, refusing bodies over `limit` bytes (413).
pub fn raw_json(
    limit: u64,
) -> impl Filter<Extract = (Option<String>, Bytes), Error = warp::Rejection> + Clone {
    warp::header::optional::<String>("content-type")
        .and(warp::body::content_length_limit(limit))
        .and(warp::body::bytes())
}

/// Decodes a JSON body into `T`, or says why it cannot be.
pub fn decode<T: DeserializeOwned>(content_type: Option<&str>, body: &[u8]) -> Result<T, Error> {
    let is_json = content_type
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(Error::UnsupportedMediaType);
    }
    serde_json::from_slice(body).map_err(|err| {
        let message = if err.is_eof() && body.iter().all(u8::is_ascii_whitespace) {
            "request body must be a JSON object".to_owned()
        } else {
            format!("request body is not valid: {err}")
        };
        Error::Malformed(message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Probe {
        name: Option<String>,
    }

    #[test]
    fn refuses_non_json_content_types() {
        let err = decode::<Probe>(Some("text/plain"), b"{}").unwrap_err();
        assert_eq!(err, Error::UnsupportedMediaType);
        assert!(decode::<Probe>(None, b"{}").is_err());
        assert!(decode::<Probe>(Some("application/json; charset=utf-8"), b"{}").is_ok());
    }

    #[test]
    fn malformed_and_unknown_fields_are_bad_requests() {
        for body in [&b"{"[..], b"", b"[]", b"{\"name\":5}", b"{\"nmae\":\"x\"}"] {
            let err = decode::<Probe>(Some("application/json"), body).unwrap_err();
            assert_eq!(
                err.code(),
                "invalid_request",
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
