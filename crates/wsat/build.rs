//! Stamps the binary with its commit and build time for `AT+GMR`.
use std::process::Command;

fn main() {
    let commit =
        output("git", &["rev-parse", "--short=7", "HEAD"]).unwrap_or_else(|| "0000000".into());
    // C's __DATE__ __TIME__ form, which ESP-AT prints: `Nov 23 2026 19:28:00`.
    let time = output("date", &["-u", "+%b %e %Y %H:%M:%S"])
        .unwrap_or_else(|| "Jan  1 1970 00:00:00".into());
    println!("cargo:rustc-env=WSAT_COMMIT={commit}");
    println!("cargo:rustc-env=WSAT_BUILD_TIME={time}");
    println!("cargo:rerun-if-changed=build.rs");
}

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (out.status.success() && !text.is_empty()).then(|| text.to_string())
}
