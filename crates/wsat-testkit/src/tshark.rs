//! tshark (Wireshark's command line) reading a capture back.
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one tshark run may take (a capture of a few hundred packets
/// takes well under a second; its start-up, a few).
const TSHARK_LIMIT: Duration = Duration::from_secs(60);

/// Set to 1 to let the capture tests pass without tshark (they say so).
pub const SKIP_VAR: &str = "WSAT_SKIP_TSHARK";

pub struct Tshark {
    path: PathBuf,
}

impl Tshark {
    /// tshark from PATH. Without it the test fails saying how to get it,
    /// unless `WSAT_SKIP_TSHARK=1`: then `None`, and a note on stderr.
    pub fn find() -> Option<Tshark> {
        let path = PathBuf::from("tshark");
        let found = Command::new(&path)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if found {
            return Some(Tshark { path });
        }
        if std::env::var(SKIP_VAR).as_deref() == Ok("1") {
            eprintln!("SKIPPED: tshark is not installed and {SKIP_VAR}=1");
            return None;
        }
        panic!(
            "tshark is not on PATH: install it (Debian: DEBIAN_FRONTEND=noninteractive apt-get install -y tshark; .ci/run does) or set {SKIP_VAR}=1 to skip the capture tests"
        );
    }

    /// `tshark -r FILE ARGS`: its standard output (it must succeed).
    pub fn run(&self, file: &Path, args: &[&str]) -> String {
        let mut child = Command::new(&self.path)
            .arg("-r")
            .arg(file)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tshark");
        // Read both pipes to the end so that tshark never blocks on one.
        let mut stdout = child.stdout.take().expect("stdout");
        let mut stderr = child.stderr.take().expect("stderr");
        let out = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            text
        });
        let err = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for tshark") {
                break status;
            }
            if started.elapsed() > TSHARK_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                panic!("tshark {args:?} took more than {TSHARK_LIMIT:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let (out, err) = (out.join().unwrap(), err.join().unwrap());
        assert!(status.success(), "tshark {args:?}: {status}: {err}");
        out
    }

    /// The packets that match `filter`, one row each with `fields`
    /// (`-T fields`: an absent field is an empty string, several
    /// occurrences in one packet are joined by `,`).
    pub fn fields(
        &self,
        file: &Path,
        extra: &[&str],
        filter: &str,
        fields: &[&str],
    ) -> Vec<Vec<String>> {
        let mut args: Vec<&str> = extra.to_vec();
        args.extend(["-Y", filter, "-T", "fields"]);
        for field in fields {
            args.extend(["-e", field]);
        }
        self.run(file, &args)
            .lines()
            .map(|line| line.split('\t').map(str::to_string).collect())
            .collect()
    }
}

/// Bytes from tshark's hex (`tcp.payload`, `data.data`: `68656c6c6f`).
pub fn unhex(hex: &str) -> Vec<u8> {
    let hex: Vec<u8> = hex.bytes().filter(|b| *b != b':').collect();
    hex.chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}
