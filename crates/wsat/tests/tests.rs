//! wsat's integration tests, one binary (ripgrep's layout): a module per
//! file beside this one, all on `wsat-testkit` (the process launcher, the AT
//! host client and the test servers). Test names read `<module>::<test>`.
mod accept;
mod bad_input;
mod boundary;
mod control;
mod flow_control;
mod many_modems;
mod pacing;
mod pcap;
mod peer;
mod python;
mod scenario;
mod semantics;
mod session;
mod sockets;
mod tls;
mod transports;
