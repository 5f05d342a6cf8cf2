//! The peer's control API: routes, their JSON, and the checks that turn bad
//! requests into 400s before anything reaches a connection.
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame};

use super::{Action, ConnState, Handshake, Peer};
use crate::http_api::{parse, ApiError};

type Answer = Result<Json<Value>, ApiError>;
type Body = Result<Bytes, BytesRejection>;
type Id = Result<Path<String>, PathRejection>;

/// The largest message `send` builds.
const MAX_SIZE: usize = 16 << 20;
const MAX_FRAGMENTS: usize = 4096;
/// Control frames carry at most 125 bytes (RFC 6455 §5.5).
const MAX_CONTROL: usize = 125;
const MAX_STALL_MS: u64 = 600_000;

/// `GET /`: every route, with an example body.
fn routes() -> Value {
    json!([
        { "route": "GET /connections" },
        { "route": "GET /connections/{id}" },
        { "route": "GET /connections/{id}/log?n=N" },
        { "route": "POST /connections/{id}/send",
          "body": { "type": "text", "size": 30, "fragments": 3, "data": "optional", "hex": "or this" } },
        { "route": "POST /connections/{id}/ping", "body": { "payload": "hi" } },
        { "route": "POST /connections/{id}/close", "body": { "code": 4000, "reason": "bye" } },
        { "route": "POST /connections/{id}/drop", "body": { "how": "rst or fin" } },
        { "route": "POST /connections/{id}/stall", "body": { "ms": 1000 } },
        { "route": "PUT /connections/{id}/mode", "body": { "echo": false } },
        { "route": "GET|PUT /mode", "body": { "echo": false } },
        { "route": "GET|PUT /handshake",
          "body": { "mode": "accept, stall, status or bad_accept", "status": 503, "ms": 1000, "once": true } },
        { "route": "GET /log?n=N" },
    ])
}

pub(super) fn router(peer: Peer) -> Router {
    Router::new()
        .route("/", get(|| async { Json(json!({ "routes": routes() })) }))
        .route("/connections", get(connections))
        .route("/connections/{id}", get(connection))
        .route("/connections/{id}/send", post(send))
        .route("/connections/{id}/ping", post(ping))
        .route("/connections/{id}/close", post(close))
        .route("/connections/{id}/drop", post(drop_tcp))
        .route("/connections/{id}/stall", post(stall))
        .route("/connections/{id}/mode", axum::routing::put(conn_mode))
        .route("/connections/{id}/log", get(conn_log))
        .route("/mode", get(mode).put(set_mode))
        .route("/handshake", get(handshake).put(set_handshake))
        .route("/log", get(log))
        .with_state(peer)
}

fn id(path: Id) -> Result<u64, ApiError> {
    let Path(id) = path?;
    id.parse()
        .map_err(|_| ApiError::bad_request(format!("connection id {id:?} is not a number")))
}

fn unknown(id: u64) -> ApiError {
    ApiError::not_found(format!("no connection {id} (GET /connections lists them)"))
}

async fn connections(State(peer): State<Peer>) -> Json<Value> {
    let state = peer.lock();
    Json(
        state
            .conns
            .iter()
            .map(|(id, conn)| conn.to_json(*id))
            .collect(),
    )
}

async fn connection(State(peer): State<Peer>, path: Id) -> Answer {
    let id = id(path)?;
    let answer = peer
        .with(id, |conn| conn.to_json(id))
        .ok_or_else(|| unknown(id))?;
    Ok(Json(answer))
}

/// Hands `action` to open connection `id` and waits until it is done.
async fn act(peer: &Peer, id: u64, action: Action) -> Answer {
    let (reply, done) = oneshot::channel();
    peer.with(id, |conn| {
        if conn.state != ConnState::Open {
            let state = conn.state.name();
            return Err(ApiError::conflict(format!(
                "connection {id} is {state}, not open"
            )));
        }
        conn.actions
            .send((action, reply))
            .map_err(|_| ApiError::conflict(format!("connection {id} has ended")))
    })
    .ok_or_else(|| unknown(id))??;
    match done.await {
        Ok(answer) => Ok(Json(answer?)),
        Err(_) => Err(ApiError::conflict(format!(
            "connection {id} ended before it was done"
        ))),
    }
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Text,
    Binary,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendRequest {
    #[serde(rename = "type", default = "text")]
    kind: Kind,
    size: Option<usize>,
    #[serde(default = "one")]
    fragments: usize,
    data: Option<String>,
    hex: Option<String>,
}

fn text() -> Kind {
    Kind::Text
}

fn one() -> usize {
    1
}

/// The generated payload's byte `i`: printable for text, every byte value
/// for binary.
fn pattern(kind: Kind, i: usize) -> u8 {
    match kind {
        Kind::Text => b"0123456789abcdefghijklmnopqrstuvwxyz"[i % 36],
        Kind::Binary => i as u8,
    }
}

fn from_hex(hex: &str) -> Result<Vec<u8>, ApiError> {
    let bad = || ApiError::bad_request("hex: an even number of hex digits");
    if hex.len() % 2 != 0 {
        return Err(bad());
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(bad)
        })
        .collect()
}

impl SendRequest {
    /// The payload: `data` or `hex` repeated to `size` (or as it is without
    /// `size`), else `size` bytes of the pattern.
    fn payload(&self) -> Result<Vec<u8>, ApiError> {
        let given = match (&self.data, &self.hex) {
            (Some(_), Some(_)) => return Err(ApiError::bad_request("give data or hex, not both")),
            (Some(data), None) => Some(data.as_bytes().to_vec()),
            (None, Some(hex)) => Some(from_hex(hex)?),
            (None, None) => None,
        };
        let size = match (self.size, &given) {
            (Some(size), _) => size,
            (None, Some(given)) => given.len(),
            (None, None) => 0,
        };
        if size > MAX_SIZE {
            return Err(ApiError::bad_request(format!(
                "size: at most {MAX_SIZE} bytes"
            )));
        }
        match given {
            Some(given) if given.is_empty() && size > 0 => Err(ApiError::bad_request(
                "size: an empty data or hex cannot be repeated to a size",
            )),
            Some(given) => Ok(given.iter().copied().cycle().take(size).collect()),
            None => Ok((0..size).map(|i| pattern(self.kind, i)).collect()),
        }
    }
}

/// `payload` as `fragments` frames of sizes as equal as may be (the first
/// ones a byte longer), the last with FIN (RFC 6455 §5.4).
fn fragment(kind: Kind, payload: &[u8], fragments: usize) -> Vec<Frame> {
    let (base, longer) = (payload.len() / fragments, payload.len() % fragments);
    let mut at = 0;
    (0..fragments)
        .map(|i| {
            let len = base + usize::from(i < longer);
            let opcode = match (i, kind) {
                (0, Kind::Text) => Data::Text,
                (0, Kind::Binary) => Data::Binary,
                _ => Data::Continue,
            };
            let frame = Frame::message(
                payload[at..at + len].to_vec(),
                OpCode::Data(opcode),
                i + 1 == fragments,
            );
            at += len;
            frame
        })
        .collect()
}

async fn send(State(peer): State<Peer>, path: Id, body: Body) -> Answer {
    let id = id(path)?;
    let request: SendRequest = parse(body)?;
    if !(1..=MAX_FRAGMENTS).contains(&request.fragments) {
        return Err(ApiError::bad_request(format!(
            "fragments: 1 to {MAX_FRAGMENTS}"
        )));
    }
    let payload = request.payload()?;
    let frames = fragment(request.kind, &payload, request.fragments);
    let kind = match request.kind {
        Kind::Text => "text",
        Kind::Binary => "binary",
    };
    let answer = json!({ "type": kind, "size": payload.len(), "fragments": frames.len() });
    act(&peer, id, Action::Send(frames, answer)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PingRequest {
    #[serde(default)]
    payload: String,
}

async fn ping(State(peer): State<Peer>, path: Id, body: Body) -> Answer {
    let id = id(path)?;
    let request: PingRequest = parse(body)?;
    if request.payload.len() > MAX_CONTROL {
        return Err(ApiError::bad_request(format!(
            "payload: at most {MAX_CONTROL} bytes"
        )));
    }
    act(&peer, id, Action::Ping(request.payload.into_bytes())).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseRequest {
    code: Option<u16>,
    reason: Option<String>,
}

async fn close(State(peer): State<Peer>, path: Id, body: Body) -> Answer {
    let id = id(path)?;
    let request: CloseRequest = parse(body)?;
    // Any code goes out as given: a test may want a host to see a bad one.
    let frame = match (request.code, request.reason) {
        (None, None) => None,
        (None, Some(_)) => return Err(ApiError::bad_request("reason: needs a code")),
        (Some(code), reason) => {
            let reason = reason.unwrap_or_default();
            if reason.len() > MAX_CONTROL - 2 {
                return Err(ApiError::bad_request(format!(
                    "reason: at most {} bytes",
                    MAX_CONTROL - 2
                )));
            }
            Some(CloseFrame {
                code: code.into(),
                reason: reason.into(),
            })
        }
    };
    act(&peer, id, Action::Close(frame)).await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DropRequest {
    #[serde(default)]
    how: How,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum How {
    /// A reset: linger 0, then close.
    #[default]
    Rst,
    /// A FIN both ways, no close frame.
    Fin,
}

/// Works in any live state (a stalled handshake too) and at once, even if
/// the connection's task is blocked writing to a client that does not read:
/// the socket is reached through its second descriptor, and the task ended.
async fn drop_tcp(State(peer): State<Peer>, path: Id, body: Body) -> Answer {
    let id = id(path)?;
    let request: DropRequest = parse(body)?;
    peer.with(id, |conn| {
        if !conn.live() {
            return Err(ApiError::conflict(format!("connection {id} has ended")));
        }
        let how = match request.how {
            How::Rst => "rst",
            How::Fin => "fin",
        };
        if let Some(socket) = &conn.socket {
            let result = match request.how {
                How::Rst => socket2::SockRef::from(socket).set_linger(Some(Duration::ZERO)),
                How::Fin => socket.shutdown(std::net::Shutdown::Both),
            };
            result.map_err(|error| ApiError::conflict(format!("connection {id}: {error}")))?;
        }
        if let Some(task) = &conn.task {
            task.abort();
        }
        conn.end(format!("dropped ({how})"));
        Ok(Json(json!({ "dropped": how })))
    })
    .ok_or_else(|| unknown(id))?
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StallRequest {
    ms: u64,
}

async fn stall(State(peer): State<Peer>, path: Id, body: Body) -> Answer {
    let id = id(path)?;
    let request: StallRequest = parse(body)?;
    if request.ms > MAX_STALL_MS {
        return Err(ApiError::bad_request(format!("ms: at most {MAX_STALL_MS}")));
    }
    act(&peer, id, Action::Stall(Duration::from_millis(request.ms))).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModeRequest {
    echo: bool,
}

async fn mode(State(peer): State<Peer>) -> Json<Value> {
    Json(json!({ "echo": peer.lock().echo }))
}

/// The default of connections accepted from now on.
async fn set_mode(State(peer): State<Peer>, body: Body) -> Answer {
    let request: ModeRequest = parse(body)?;
    peer.lock().echo = request.echo;
    Ok(Json(json!({ "echo": request.echo })))
}

async fn conn_mode(State(peer): State<Peer>, path: Id, body: Body) -> Answer {
    let id = id(path)?;
    let request: ModeRequest = parse(body)?;
    peer.with(id, |conn| conn.echo = request.echo)
        .ok_or_else(|| unknown(id))?;
    Ok(Json(json!({ "id": id, "echo": request.echo })))
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum HandshakeMode {
    Accept,
    Stall,
    Status,
    BadAccept,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetHandshake {
    mode: HandshakeMode,
    status: Option<u16>,
    ms: Option<u64>,
    #[serde(default)]
    once: bool,
}

fn handshakes(peer: &Peer) -> Value {
    let state = peer.lock();
    json!({
        "all": state.handshake.to_json(),
        "once": state.once.map(Handshake::to_json),
    })
}

async fn handshake(State(peer): State<Peer>) -> Json<Value> {
    Json(handshakes(&peer))
}

async fn set_handshake(State(peer): State<Peer>, body: Body) -> Answer {
    let request: SetHandshake = parse(body)?;
    if request.status.is_some() && request.mode != HandshakeMode::Status {
        return Err(ApiError::bad_request("status: only with mode status"));
    }
    if request.ms.is_some() && request.mode != HandshakeMode::Stall {
        return Err(ApiError::bad_request("ms: only with mode stall"));
    }
    let handshake = match request.mode {
        HandshakeMode::Accept => Handshake::Accept,
        HandshakeMode::BadAccept => Handshake::BadAccept,
        HandshakeMode::Stall => match request.ms {
            Some(ms) if ms > MAX_STALL_MS => {
                return Err(ApiError::bad_request(format!("ms: at most {MAX_STALL_MS}")))
            }
            ms => Handshake::Stall(ms),
        },
        HandshakeMode::Status => match request.status {
            Some(status @ (100..=599)) if status != 101 => Handshake::Status(status),
            Some(101) => {
                return Err(ApiError::bad_request(
                    "status: 101 is mode accept (or bad_accept)",
                ))
            }
            _ => return Err(ApiError::bad_request("status: 100 to 599 (not 101)")),
        },
    };
    {
        let mut state = peer.lock();
        if request.once {
            state.once = Some(handshake);
        } else {
            state.handshake = handshake;
            state.once = None;
        }
    }
    Ok(Json(handshakes(&peer)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogQuery {
    n: Option<usize>,
}

fn entries(conn: &super::Conn, n: Option<usize>) -> Value {
    let skip = conn.log.len().saturating_sub(n.unwrap_or(usize::MAX));
    conn.log.iter().skip(skip).map(|e| e.to_json()).collect()
}

/// Every kept connection's last `n` received messages (all kept: 100).
async fn log(State(peer): State<Peer>, query: Result<Query<LogQuery>, QueryRejection>) -> Answer {
    let Query(query) = query?;
    let state = peer.lock();
    let all = state
        .conns
        .iter()
        .map(|(id, conn)| json!({ "id": id, "messages": entries(conn, query.n) }))
        .collect();
    Ok(Json(all))
}

async fn conn_log(
    State(peer): State<Peer>,
    path: Id,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> Answer {
    let id = id(path)?;
    let Query(query) = query?;
    let answer = peer
        .with(id, |conn| entries(conn, query.n))
        .ok_or_else(|| unknown(id))?;
    Ok(Json(answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_are_as_equal_as_may_be_and_only_the_last_has_fin() {
        let frames = fragment(Kind::Text, b"abcdefghij", 3);
        let got: Vec<(bool, &[u8])> = frames
            .iter()
            .map(|f| (f.header().is_final, f.payload()))
            .collect();
        assert_eq!(
            got,
            [(false, &b"abcd"[..]), (false, b"efg"), (true, b"hij")]
        );
        assert_eq!(frames[0].header().opcode, OpCode::Data(Data::Text));
        assert_eq!(frames[1].header().opcode, OpCode::Data(Data::Continue));
        // More fragments than bytes: empty frames, which RFC 6455 allows.
        let frames = fragment(Kind::Binary, b"x", 3);
        let lens: Vec<usize> = frames.iter().map(|f| f.payload().len()).collect();
        assert_eq!(lens, [1, 0, 0]);
    }

    #[test]
    fn payloads_repeat_data_to_the_size_or_follow_the_pattern() {
        let send = |json: &str| {
            parse::<SendRequest>(Ok(Bytes::from(json.to_string())))
                .unwrap()
                .payload()
        };
        assert_eq!(send(r#"{"data":"ab","size":5}"#).unwrap(), b"ababa");
        assert_eq!(send(r#"{"hex":"00ff"}"#).unwrap(), [0, 255]);
        assert_eq!(send(r#"{"size":3}"#).unwrap(), b"012");
        assert_eq!(send(r#"{"type":"binary","size":3}"#).unwrap(), [0, 1, 2]);
        assert!(send(r#"{"hex":"0"}"#).is_err());
        assert!(send(r#"{"data":"","size":1}"#).is_err());
        assert!(send(r#"{"data":"a","hex":"00"}"#).is_err());
    }
}
