//! The sans-IO core of wsat.
//!
//! Everything about the protocols and nothing about I/O: no sockets, clocks or
//! threads. Time comes in as milliseconds since an arbitrary start, randomness
//! and the wall clock from a caller-supplied [`Platform`]. The runtime feeds
//! bytes and events into a [`Modem`] and carries out what it asks for.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod at;
pub mod modem;
pub mod pki;
pub mod ws;

pub use modem::{
    LinkId, Modem, ModemOptions, NetAction, NetEvent, Platform, TlsParams, UartConfig, LINK_COUNT,
};
