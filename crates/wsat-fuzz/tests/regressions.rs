//! Replays every input kept under `regressions/<target>/` (crashes the
//! fuzzers found, and seeds that reach deep states) through its harness.
use std::fs;
use std::path::Path;

fn replay(target: &str, harness: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("regressions")
        .join(target);
    let mut count = 0;
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = fs::read(&path).unwrap();
        eprintln!("{}", path.display());
        harness(&data);
        count += 1;
    }
    assert!(count > 0, "no inputs in {}", dir.display());
}

#[test]
fn at_port_inputs() {
    replay("at_port", wsat_fuzz::at_port);
}

#[test]
fn net_frames_inputs() {
    replay("net_frames", wsat_fuzz::net_frames);
}

#[test]
fn handshake_inputs() {
    replay("handshake", wsat_fuzz::handshake);
}

#[test]
fn at_commands_inputs() {
    replay("at_commands", wsat_fuzz::at_commands);
}

#[test]
fn host_flood_inputs() {
    replay("host_flood", wsat_fuzz::host_flood);
}
