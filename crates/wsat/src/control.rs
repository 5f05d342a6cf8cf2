//! The control API (`--control ADDR`): HTTP + JSON for tests that drive a
//! host driver against wsat. It lists the modems and their links and takes
//! faults; each modem's task carries them out (the API only sends it
//! requests), so a fault lands between two steps of the modem's loop like
//! any other event.
//!
//! ```text
//! GET  /modems               every modem: id, port, firmware, station, links
//! GET  /modems/{id}          one
//! POST /modems/{id}/faults   {"fault": "...", ...}: see ControlFault
//! ```
use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use wsat_proto::{Fault, FaultAnswer, Link, ReportTime, LINK_COUNT, SOCKET_COUNT};

use crate::http_api::{self, ApiError};

/// How long the API waits for a modem's task to answer.
const ANSWER_LIMIT: Duration = Duration::from_secs(5);

/// The modems of this process, by id.
#[derive(Default)]
pub struct Registry {
    next_id: AtomicU64,
    modems: Mutex<BTreeMap<u64, Entry>>,
}

struct Entry {
    requests: mpsc::UnboundedSender<Request>,
}

/// What the API asks of a modem's task.
pub(crate) enum Request {
    Inspect(oneshot::Sender<ModemInfo>),
    Fault(ControlFault, oneshot::Sender<Result<(), String>>),
    /// A stall is over (sent by the modem's own timer task).
    Unstall(Link),
}

/// A modem's place in the registry; dropping it removes the modem.
pub(crate) struct Registration {
    pub(crate) id: u64,
    /// For the modem's own timers (a stall's end).
    pub(crate) requests: mpsc::UnboundedSender<Request>,
    registry: Arc<Registry>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Entry>> {
        self.modems.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new modem: its registration and where its requests arrive.
    pub(crate) fn register(self: &Arc<Self>) -> (Registration, mpsc::UnboundedReceiver<Request>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().insert(
            id,
            Entry {
                requests: tx.clone(),
            },
        );
        let registration = Registration {
            id,
            requests: tx,
            registry: self.clone(),
        };
        (registration, rx)
    }

    fn sender(&self, id: u64) -> Option<mpsc::UnboundedSender<Request>> {
        self.lock().get(&id).map(|e| e.requests.clone())
    }

    fn ids(&self) -> Vec<u64> {
        self.lock().keys().copied().collect()
    }
}

/// A modem as the API shows it.
#[derive(Debug, Serialize)]
pub(crate) struct ModemInfo {
    pub id: u64,
    /// `stdio`, `tcp 127.0.0.1:50000`, `pty /tmp/ttyWSAT`, …
    pub port: String,
    pub firmware: &'static str,
    /// The SSID the station is associated with.
    pub station: Option<String>,
    pub links: Vec<LinkInfo>,
}

/// A link as the API shows it.
#[derive(Debug, Serialize)]
pub(crate) struct LinkInfo {
    /// `ws0`…`ws2`, `socket0`…`socket4`.
    pub link: String,
    pub state: &'static str,
    /// The URI, or the socket's type and peer.
    pub peer: String,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

/// A fault, as JSON (`{"fault": "reboot"}`) and in scenario files.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(tag = "fault", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum ControlFault {
    /// The next command starting with `prefix` gets `answer` instead of
    /// running.
    Answer {
        prefix: String,
        answer: AnswerSpec,
    },
    /// Unsolicited bytes, `now` (default), `after_ok` or `in_echo`.
    Report {
        data: String,
        #[serde(default)]
        when: When,
    },
    /// The module restarts by itself.
    Reboot {},
    /// The AP goes away / comes back.
    ApLost {},
    ApBack {},
    /// Host output in pieces of `bytes`, `delay_ms` apart (`bytes` 0: off).
    ChunkOutput {
        bytes: usize,
        delay_ms: u64,
    },
    /// The link's connection breaks now.
    Reset {
        link: LinkName,
    },
    /// The link's connection stops moving bytes for `ms`.
    Stall {
        link: LinkName,
        ms: u64,
    },
    /// The link's traffic (TCP, TLS) is delayed by `latency_ms` each way
    /// and capped at `bytes_per_s`; both 0 or absent: back to normal.
    Shape {
        link: LinkName,
        #[serde(default)]
        latency_ms: u64,
        #[serde(default)]
        bytes_per_s: u64,
    },
    /// The next connect (of `link`, or of any link) fails so.
    FailConnect {
        #[serde(default)]
        link: Option<LinkName>,
        how: FailHow,
    },
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AnswerSpec {
    Error,
    Busy,
    /// `ERR CODE:0x<code>` then `ERROR`.
    ErrCode(u32),
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum When {
    #[default]
    Now,
    AfterOk,
    InEcho,
}

/// How a connect fails.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FailHow {
    Refused,
    Dns,
    Tls,
    /// The server answers the WebSocket handshake with this status (a
    /// socket link is refused instead).
    HttpStatus(u16),
}

/// A link named as the API names it: `ws0`…`ws2`, `socket0`…`socket4`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct LinkName(pub Link);

impl TryFrom<String> for LinkName {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        let parse = |rest: &str, count: usize| {
            rest.parse::<u8>()
                .ok()
                .filter(|&id| usize::from(id) < count)
        };
        let link = if let Some(rest) = name.strip_prefix("ws") {
            parse(rest, LINK_COUNT).map(Link::Ws)
        } else if let Some(rest) = name.strip_prefix("socket") {
            parse(rest, SOCKET_COUNT).map(Link::Socket)
        } else {
            None
        };
        link.map(LinkName).ok_or_else(|| {
            format!(
                "no link {name:?}: ws0..ws{} or socket0..socket{}",
                LINK_COUNT - 1,
                SOCKET_COUNT - 1
            )
        })
    }
}

/// `ws0`, `socket3`.
pub(crate) fn link_name(link: Link) -> String {
    match link {
        Link::Ws(id) => format!("ws{id}"),
        Link::Socket(id) => format!("socket{id}"),
    }
}

impl ControlFault {
    /// The core's fault, when it is one of the core's (the AT port's and the
    /// Wi-Fi's); the network's are the driver's.
    pub(crate) fn core_fault(&self) -> Option<Fault> {
        Some(match self {
            ControlFault::Answer { prefix, answer } => Fault::Answer {
                prefix: prefix.as_bytes().to_vec(),
                answer: match *answer {
                    AnswerSpec::Error => FaultAnswer::Error,
                    AnswerSpec::Busy => FaultAnswer::Busy,
                    AnswerSpec::ErrCode(code) => FaultAnswer::ErrCode(code),
                },
            },
            ControlFault::Report { data, when } => Fault::Report {
                bytes: data.as_bytes().to_vec(),
                when: match when {
                    When::Now => ReportTime::Now,
                    When::AfterOk => ReportTime::AfterNextOk,
                    When::InEcho => ReportTime::InNextEcho,
                },
            },
            ControlFault::Reboot {} => Fault::Reboot,
            ControlFault::ApLost {} => Fault::ApLost,
            ControlFault::ApBack {} => Fault::ApBack,
            _ => return None,
        })
    }
}

/// Serves the API on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, registry: Arc<Registry>) -> io::Result<()> {
    let app = Router::new()
        .route("/modems", get(list))
        .route("/modems/{id}", get(one))
        .route("/modems/{id}/faults", post(fault))
        .with_state(registry);
    http_api::serve(listener, app).await
}

async fn inspect(registry: &Registry, id: u64) -> Option<ModemInfo> {
    let sender = registry.sender(id)?;
    let (tx, rx) = oneshot::channel();
    sender.send(Request::Inspect(tx)).ok()?;
    tokio::time::timeout(ANSWER_LIMIT, rx).await.ok()?.ok()
}

async fn list(State(registry): State<Arc<Registry>>) -> Json<Vec<ModemInfo>> {
    let mut modems = Vec::new();
    for id in registry.ids() {
        // A modem that ended meanwhile is left out.
        if let Some(info) = inspect(&registry, id).await {
            modems.push(info);
        }
    }
    Json(modems)
}

fn modem_id(text: &str) -> Result<u64, ApiError> {
    text.parse()
        .map_err(|_| ApiError::bad_request(format!("{text:?} is not a modem id")))
}

async fn one(
    State(registry): State<Arc<Registry>>,
    Path(id): Path<String>,
) -> Result<Json<ModemInfo>, ApiError> {
    let id = modem_id(&id)?;
    match inspect(&registry, id).await {
        Some(info) => Ok(Json(info)),
        None => Err(ApiError::not_found(format!("no modem {id}"))),
    }
}

async fn fault(
    State(registry): State<Arc<Registry>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = modem_id(&id)?;
    let fault: ControlFault = http_api::parse_body(&body)?;
    let sender = registry
        .sender(id)
        .ok_or_else(|| ApiError::not_found(format!("no modem {id}")))?;
    let (tx, rx) = oneshot::channel();
    sender
        .send(Request::Fault(fault, tx))
        .map_err(|_| ApiError::not_found(format!("modem {id} has ended")))?;
    match tokio::time::timeout(ANSWER_LIMIT, rx).await {
        Ok(Ok(Ok(()))) => Ok(Json(serde_json::json!({"ok": true}))),
        Ok(Ok(Err(message))) => Err(ApiError::conflict(message)),
        _ => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!("modem {id} did not answer"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_from_json_and_bad_ones_say_where() {
        let fault: ControlFault = serde_json::from_str(
            r#"{"fault":"answer","prefix":"AT+CIPSEND","answer":{"err_code":16842753}}"#,
        )
        .unwrap();
        assert_eq!(
            fault,
            ControlFault::Answer {
                prefix: "AT+CIPSEND".into(),
                answer: AnswerSpec::ErrCode(16_842_753)
            }
        );
        let fault: ControlFault =
            serde_json::from_str(r#"{"fault":"stall","link":"socket4","ms":50}"#).unwrap();
        assert_eq!(
            fault,
            ControlFault::Stall {
                link: LinkName(Link::Socket(4)),
                ms: 50
            }
        );
        let fault: ControlFault =
            serde_json::from_str(r#"{"fault":"fail_connect","how":{"http_status":503}}"#).unwrap();
        assert_eq!(
            fault,
            ControlFault::FailConnect {
                link: None,
                how: FailHow::HttpStatus(503)
            }
        );
        // A bad link name says which names there are (serde has buffered
        // the tagged object by then, so no position); the rest say where.
        for (bad, needle) in [
            (
                r#"{"fault":"reset","link":"ws3"}"#,
                "ws0..ws2 or socket0..socket4",
            ),
            (r#"{"fault":"reset","link":"socket"}"#, "no link"),
            (r#"{"fault":"nope"}"#, "line 1"),
            (r#"{"fault":"reboot","extra":1}"#, "unknown field"),
            (r#"{"fault":"report"}"#, "missing field `data`"),
            ("{", "line 1"),
        ] {
            let error = serde_json::from_str::<ControlFault>(bad).unwrap_err();
            assert!(error.to_string().contains(needle), "{bad}: {error}");
        }
    }
}
