//! The runtime of wsat: drives the sans-IO [`wsat_proto::Modem`] with tokio.
//!
//! The core decides everything; this crate moves bytes between the AT port
//! (stdio, TCP, pty, serial), the links' sockets and the timer. Public is
//! only what the binary and the tests use; see docs/architecture.md.
#![deny(unsafe_code)]
#![warn(unreachable_pub)]

pub mod control;
pub mod driver;
pub mod echo_server;
pub mod http_api;
pub mod net;
pub mod pcap;
pub mod peer;
mod ping;
pub mod pki;
pub mod scenario;
mod shape;
pub mod tls;
pub mod trace;
pub mod transport;
