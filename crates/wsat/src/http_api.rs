//! What every HTTP+JSON control API of wsat shares (`wsat peer --control`
//! now, the modem's later): binding and a line on stderr saying where, errors as
//! `{"error": "..."}` with their status, request bodies parsed with a message
//! saying what is wrong, and JSON answers for unknown routes and methods.
use std::io;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;

/// An error answer: its status and `{"error": message}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    /// 400: the request is malformed or a field is wrong.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: no such thing.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// 409: the thing exists but cannot do that now.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message });
        (self.status, Json(body)).into_response()
    }
}

/// axum's own rejections answer in plain text, some with 415 or 422: every
/// one becomes a JSON 400 (or 413 for a body over the limit).
impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> ApiError {
        let status = match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> ApiError {
        ApiError::bad_request(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::bad_request(rejection.body_text())
    }
}

/// The request body as JSON; an empty body is `{}` (so `curl -X POST` with
/// no `-d` works for actions without parameters). Any content type is
/// taken: `curl -d` sends `application/x-www-form-urlencoded`.
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|error| {
        let what = match error.classify() {
            serde_json::error::Category::Data => "bad field",
            _ => "malformed JSON",
        };
        ApiError::bad_request(format!("{what}: {error}"))
    })
}

/// [`parse_body`] of a body axum may have failed to read.
pub fn parse<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    parse_body(&body?)
}

/// The answer for a route that does not exist.
pub async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route {method} {uri} (GET / lists them)"))
}

/// The answer for a route that exists, asked with another method.
pub async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{uri} does not take {method} (GET / lists the routes)"),
    )
}

/// Prints `<what> control on <addr>` to stderr, with a warning when other
/// machines could reach it: there is no authentication.
pub fn announce(listener: &TcpListener, what: &str) -> io::Result<()> {
    let local = listener.local_addr()?;
    eprintln!("{what} control on {local}");
    if !local.ip().is_loopback() {
        eprintln!("warning: the control API has no authentication, and {local} is reachable beyond this machine");
    }
    Ok(())
}

/// Serves `router` on `listener`, with JSON 404 and 405 answers, until the
/// process ends.
pub async fn serve(listener: TcpListener, router: Router) -> io::Result<()> {
    let router = router
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method);
    axum::serve(listener, router).await
}

/// How long a scenario's request to a `wsat peer` may take.
const PEER_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A scenario's request to a `wsat peer`'s control API (HTTP/1.1, one
/// request per connection: all that API needs, so no client crate); the
/// outcome goes to the log.
pub(crate) async fn ask_peer(request: crate::scenario::PeerRequest) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let crate::scenario::PeerRequest {
        control,
        method,
        path,
        body,
    } = request;
    let body = body.map_or_else(|| "{}".to_string(), |b| b.to_string());
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(control).await?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {control}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        io::Result::Ok(answer)
    };
    match tokio::time::timeout(PEER_LIMIT, exchange).await {
        Ok(Ok(answer)) => {
            let answer = String::from_utf8_lossy(&answer);
            let status = answer.lines().next().unwrap_or_default().to_string();
            tracing::info!(%method, %path, %status, "peer answered");
        }
        Ok(Err(error)) => tracing::warn!(%method, %path, %error, "peer request failed"),
        Err(_) => tracing::warn!(%method, %path, "peer did not answer"),
    }
}
