//! Refusals as values: each carries the HTTP status a Qdrant client expects
//! and a message that names what was refused. A filesystem error becomes
//! the status its errno means (EINVAL 400, ENOENT 404, E2BIG 413, ENOSPC
//! 507, EACCES 403, …), with the errno's text.

use std::io;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::reply::error_response;

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// A request outside what is supported or well formed (Qdrant's "Wrong input").
    pub fn bad_request(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::BAD_REQUEST, format!("Wrong input: {message}"))
    }

    pub fn not_found(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("Not found: {message}"))
    }

    pub fn collection_not_found(name: &str) -> Self {
        Self::not_found(format!("Collection `{name}` doesn't exist!"))
    }

    pub fn point_not_found(id: u64) -> Self {
        Self::not_found(format!("No point with id {id} found"))
    }

    pub fn forbidden(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::FORBIDDEN, format!("Forbidden: {message}"))
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Service internal error: {message}"),
        )
    }

    /// A filesystem call that failed: `what` says which (and on what).
    pub fn io(what: impl std::fmt::Display, error: io::Error) -> Self {
        let status = status_of(&error);
        let prefix = match status {
            StatusCode::BAD_REQUEST => "Wrong input",
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::FORBIDDEN => "Forbidden",
            StatusCode::CONFLICT => "Conflict",
            StatusCode::PAYLOAD_TOO_LARGE => "Payload too large",
            StatusCode::INSUFFICIENT_STORAGE => "Insufficient storage",
            StatusCode::SERVICE_UNAVAILABLE => "Service unavailable",
            _ => "Service internal error",
        };
        Self::new(status, format!("{prefix}: {what}: {error}"))
    }

    /// The errno of the io error behind this refusal is not kept; this
    /// says whether the status is the one for "not stored".
    pub fn is_not_found(&self) -> bool {
        self.status == StatusCode::NOT_FOUND
    }
}

/// The HTTP status an errno from the filesystem means to a client.
pub fn status_of(error: &io::Error) -> StatusCode {
    let Some(errno) = error.raw_os_error() else {
        // Refused by the client library before any ioctl: a bad argument.
        return match error.kind() {
            io::ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
    };
    match errno {
        libc::EINVAL | libc::ERANGE => StatusCode::BAD_REQUEST,
        libc::ENOENT | libc::ENODATA => StatusCode::NOT_FOUND,
        libc::E2BIG => StatusCode::PAYLOAD_TOO_LARGE,
        libc::EFBIG | libc::ENOSPC | libc::EDQUOT => StatusCode::INSUFFICIENT_STORAGE,
        libc::EACCES | libc::EPERM | libc::EROFS => StatusCode::FORBIDDEN,
        libc::EEXIST | libc::EBUSY => StatusCode::CONFLICT,
        // The daemon's request memory was full for 30 s, or it was interrupted: try again.
        libc::ENOMEM | libc::EINTR | libc::EAGAIN => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(self.status, &self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errno(n: i32) -> io::Error {
        io::Error::from_raw_os_error(n)
    }

    #[test]
    fn errnos_map_to_the_status_a_client_expects() {
        for (n, status) in [
            (libc::EINVAL, 400),
            (libc::ENOENT, 404),
            (libc::E2BIG, 413),
            (libc::EFBIG, 507),
            (libc::ENOSPC, 507),
            (libc::EACCES, 403),
            (libc::EPERM, 403),
            (libc::EROFS, 403),
            (libc::EEXIST, 409),
            (libc::ENOMEM, 503),
            (libc::EIO, 500),
            (libc::ENOTTY, 500),
        ] {
            assert_eq!(status_of(&errno(n)).as_u16(), status, "errno {n}");
        }
        let refused_by_the_client =
            io::Error::new(io::ErrorKind::InvalidInput, "3 ids, 2 payloads");
        assert_eq!(status_of(&refused_by_the_client), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn an_io_refusal_names_the_call_and_the_errno() {
        let e = ApiError::io("upsert into `a`", errno(libc::ENOSPC));
        assert_eq!(e.status, StatusCode::INSUFFICIENT_STORAGE);
        assert!(e
            .message
            .starts_with("Insufficient storage: upsert into `a`: "));
        assert!(
            e.message.contains("No space left on device"),
            "{}",
            e.message
        );
        assert!(ApiError::io("x", errno(libc::ENOENT)).is_not_found());
    }
}
