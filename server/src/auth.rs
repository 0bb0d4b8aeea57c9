//! The API key: with one configured, every request except the probes Qdrant
//! also leaves open (`/`, `/healthz`, `/livez`, `/readyz`) must carry it in
//! an `api-key` header or as `Authorization: Bearer KEY`, or gets 401.
//! Keys are compared in time that does not depend on where they differ.

use axum::http::{HeaderMap, StatusCode};

use crate::error::ApiError;

/// Paths answered without a key, as Qdrant answers them.
const OPEN_PATHS: [&str; 4] = ["/", "/healthz", "/livez", "/readyz"];

/// Equal length and equal bytes, looking at every byte either way.
pub fn keys_equal(given: &[u8], expected: &[u8]) -> bool {
    if given.len() != expected.len() {
        return false;
    }
    given
        .iter()
        .zip(expected)
        .fold(0u8, |difference, (a, b)| difference | (a ^ b))
        == 0
}

/// The key a request carries, if any.
fn presented(headers: &HeaderMap) -> Option<&[u8]> {
    if let Some(key) = headers.get("api-key") {
        return Some(key.as_bytes());
    }
    let authorization = headers.get(axum::http::header::AUTHORIZATION)?.as_bytes();
    authorization
        .strip_prefix(b"Bearer ")
        .or_else(|| authorization.strip_prefix(b"bearer "))
}

/// Admits the request or refuses it with 401.
pub fn check(expected: Option<&str>, path: &str, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    if OPEN_PATHS.contains(&path) {
        return Ok(());
    }
    match presented(headers) {
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized: Must provide an API key or an Authorization bearer token",
        )),
        Some(key) if keys_equal(key, expected.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized: Invalid API key",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn the_key_comes_in_either_header() {
        let key = Some("s3cret");
        assert!(check(key, "/collections", &headers(&[("api-key", "s3cret")])).is_ok());
        assert!(check(
            key,
            "/collections",
            &headers(&[("authorization", "Bearer s3cret")])
        )
        .is_ok());
        assert!(check(None, "/collections", &headers(&[])).is_ok());
    }

    #[test]
    fn a_missing_or_wrong_key_is_401_except_on_the_probes() {
        let key = Some("s3cret");
        for h in [
            headers(&[]),
            headers(&[("api-key", "s3cre")]),
            headers(&[("api-key", "s3cret!")]),
            headers(&[("authorization", "Basic s3cret")]),
            headers(&[("authorization", "Bearer wrong!")]),
        ] {
            let e = check(key, "/collections", &h).unwrap_err();
            assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        }
        for path in OPEN_PATHS {
            assert!(check(key, path, &headers(&[])).is_ok());
        }
        assert!(check(key, "/metrics", &headers(&[])).is_err());
    }

    #[test]
    fn keys_equal_needs_every_byte() {
        assert!(keys_equal(b"abc", b"abc"));
        assert!(!keys_equal(b"abc", b"abd"));
        assert!(!keys_equal(b"ab", b"abc"));
        assert!(keys_equal(b"", b""));
    }
}
