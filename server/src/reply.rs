//! Qdrant's envelope around every answer: `{"result": R, "status": "ok",
//! "time": seconds}`, and `{"status": {"error": "…"}, "time": seconds}` with
//! a non-2xx status for a refusal. The time runs from when the request
//! arrived (the metrics layer starts the clock for each request).

use std::future::Future;
use std::time::Instant;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

tokio::task_local! {
    static STARTED: Instant;
}

/// Runs `work` (one request) with its clock started now.
pub async fn timed<F: Future>(work: F) -> F::Output {
    STARTED.scope(Instant::now(), work).await
}

/// Seconds since the request arrived; 0 outside a timed request.
pub fn elapsed_seconds() -> f64 {
    STARTED
        .try_with(|started| started.elapsed().as_secs_f64())
        .unwrap_or(0.0)
}

/// A successful answer carrying `result`.
pub struct Answer<T>(pub T);

#[derive(Serialize)]
struct OkEnvelope<'a, T> {
    result: &'a T,
    status: &'static str,
    time: f64,
}

#[derive(Serialize)]
struct ErrorStatus<'a> {
    error: &'a str,
}

#[derive(Serialize)]
struct ErrorEnvelope<'a> {
    status: ErrorStatus<'a>,
    time: f64,
}

fn json(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

impl<T: Serialize> IntoResponse for Answer<T> {
    fn into_response(self) -> Response {
        let envelope = OkEnvelope {
            result: &self.0,
            status: "ok",
            time: elapsed_seconds(),
        };
        match serde_json::to_vec(&envelope) {
            Ok(body) => json(StatusCode::OK, body),
            Err(e) => error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("Service internal error: the answer did not serialise: {e}"),
            ),
        }
    }
}

/// A refusal in Qdrant's shape.
pub fn error_response(status: StatusCode, message: &str) -> Response {
    let envelope = ErrorEnvelope {
        status: ErrorStatus { error: message },
        time: elapsed_seconds(),
    };
    // Serialising a string and a float cannot fail.
    let body = serde_json::to_vec(&envelope).unwrap_or_default();
    json(status, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn answers_and_refusals_have_qdrants_envelope() {
        let ok = timed(async { Answer(serde_json::json!({"exists": true})).into_response() }).await;
        assert_eq!(ok.status(), StatusCode::OK);
        let ok = body(ok).await;
        assert_eq!(ok["result"]["exists"], true);
        assert_eq!(ok["status"], "ok");
        assert!(ok["time"].as_f64().unwrap() >= 0.0);

        let refused = error_response(StatusCode::NOT_FOUND, "Not found: x");
        assert_eq!(refused.status(), StatusCode::NOT_FOUND);
        let refused = body(refused).await;
        assert_eq!(refused["status"]["error"], "Not found: x");
        assert_eq!(refused["time"], 0.0);
        assert!(refused.get("result").is_none());
    }
}
