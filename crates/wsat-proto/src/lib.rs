//! The sans-IO core of wsat.
//!
//! Everything about the protocols and nothing about I/O: no sockets, clocks or
//! threads. Time comes in as milliseconds since an arbitrary start, randomness
//! and the wall clock from a caller-supplied [`Platform`]. The runtime feeds
//! bytes and events into a [`Modem`] and carries out what it asks for.
//!
//! # The invariant
//!
//! A [`Modem`]'s answers (its output, actions, log, deadline and how much
//! input it wants) change only when it is fed: [`Modem::host_input`],
//! [`Modem::advance_host_output`], [`Modem::net_event`],
//! [`Modem::net_answer`], [`Modem::accept`] or [`Modem::handle_timeout`].
//! So one loop drives it everywhere: feed what happened, then ask
//! everything again. The modem buffers what it cannot take yet and bounds
//! its memory; the runtime has no other rule to keep.
//!
//! ```no_run
//! use wsat_proto::{Link, Modem, NetAction, NetEvent};
//! # fn read_port(_: &mut [u8]) -> usize { 0 }
//! # fn write_port(_: &[u8]) -> usize { 0 }
//! # fn set_line(_: wsat_proto::UartConfig) {}
//! # fn do_net(_: NetAction) {}
//! # fn next_net_event(_: Link, _: usize) -> Option<Vec<u8>> { None }
//! # fn clock_ms() -> u64 { 0 }
//! # fn arm_timer(_: Option<u64>) {}
//! # fn timer_fired() -> bool { false }
//! fn drive(mut modem: Modem) {
//!     let mut buf = [0u8; 16 * 1024];
//!     loop {
//!         // Step 2: ask.
//!         let written = write_port(modem.host_output());
//!         // Step 1: feed what happened.
//!         modem.advance_host_output(written, clock_ms());
//!         if let Some(config) = modem.poll_uart_change() {
//!             set_line(config);
//!         }
//!         while let Some(action) = modem.poll_net_action() {
//!             do_net(action);
//!         }
//!         while let Some(entry) = modem.poll_log() {
//!             eprintln!("{entry:?}");
//!         }
//!         arm_timer(modem.poll_timeout());
//!         if modem.wants_host_input() {
//!             let n = read_port(&mut buf);
//!             modem.host_input(&buf[..n], clock_ms());
//!         }
//!         for link in Link::all() {
//!             let room = modem.net_input_room(link);
//!             if room > 0 {
//!                 if let Some(bytes) = next_net_event(link, room) {
//!                     modem.net_event(link, NetEvent::Received(&bytes), clock_ms());
//!                 }
//!             }
//!         }
//!         if timer_fired() {
//!             modem.handle_timeout(clock_ms());
//!         }
//!     }
//! }
//! ```
//!
//! [`testing::Sim`] (feature `testing`) is the same loop over a simulated
//! clock, host and network; the tokio runtime in the `wsat` crate is the same
//! loop over real I/O.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod at;
mod bytes;
pub mod modem;
pub mod pki;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod ws;

pub use modem::{
    AccessPoint, ClientIdentity, Direction, Fault, FaultAnswer, Firmware, Link, LinkId, LinkStatus,
    Log, Modem, ModemOptions, NetAction, NetAnswer, NetEvent, Platform, ReportTime,
    ServerVerification, TlsPolicy, Transport, UartConfig, WifiOptions, HOST_INPUT_BOUND,
    HOST_OUTPUT_BOUND, LINK_COUNT, LOG_BOUND, LOG_PREVIEW, SOCKET_COUNT,
};
