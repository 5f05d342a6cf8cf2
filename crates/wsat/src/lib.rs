//! The runtime of wsat: drives the sans-IO [`wsat_proto::Modem`] with tokio.
//!
//! The core decides everything; this crate moves bytes between the AT port
//! (stdio, TCP, pty, serial), the links' sockets and the timer.
#![deny(unsafe_code)]

pub mod driver;
pub mod echo_server;
pub mod net;
pub mod pki;
pub mod tls;
pub mod trace;
pub mod transport;
