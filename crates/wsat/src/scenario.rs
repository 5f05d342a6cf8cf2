//! Scenario files (`--scenario FILE`): the control API's faults in YAML,
//! each step waiting for a time or an event, and an optional verdict on
//! what the host must have sent, so a CI job runs a fault sequence with no
//! code.
//!
//! ```yaml
//! steps:
//!   - on: {command: "AT+WSOPEN"}    # once the host sent a line starting so
//!     after_ms: 100                 # then this much later
//!     do: {fault: reset, link: ws0}
//!   - on: {connected: ws0}          # once the link is open again
//!     do: {fault: report, data: "+WS_DATA:0,2,hi\r\n", when: after_ok}
//! expect:
//!   sent: ["AT+WSOPEN=0", "AT+WSSEND=0"]   # lines, in this order (prefixes)
//!   within_ms: 30000
//! ```
//!
//! Every modem runs the scenario on its own; the first verdict ends the
//! process (exit code 0 passed, 1 failed).
use std::path::Path;

use serde::Deserialize;

use crate::control::{ControlFault, LinkName};

/// A parsed scenario file.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default)]
    steps: Vec<Step>,
    expect: Option<Expect>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct Step {
    /// What the step waits for; none: only `after_ms`.
    on: Option<Trigger>,
    /// How long after the trigger (or after the previous step).
    #[serde(default)]
    after_ms: u64,
    /// A fault for the modem …
    #[serde(rename = "do")]
    action: Option<ControlFault>,
    /// … or a request to a `wsat peer`'s control API.
    peer: Option<PeerRequest>,
}

/// A request to a `wsat peer`'s control API, so one scenario drives both
/// the modem and the server behind it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct PeerRequest {
    /// The peer's `--control` address.
    pub control: std::net::SocketAddr,
    #[serde(default = "post")]
    pub method: String,
    /// `/connections/1/close`, …
    pub path: String,
    /// The JSON body (`{}` when left out).
    #[serde(default)]
    pub body: Option<serde_json::Value>,
}

fn post() -> String {
    "POST".into()
}

/// What a due step does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Fault(ControlFault),
    Peer(PeerRequest),
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Trigger {
    /// The host sent a command line starting with this.
    Command(String),
    /// The links have received this many bytes in all.
    Received(u64),
    /// This link is open.
    Connected(LinkName),
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct Expect {
    /// Command lines the host must send, in this order (each a prefix).
    sent: Vec<String>,
    /// The verdict comes then at the latest (default: when the host
    /// closes the port).
    within_ms: Option<u64>,
}

impl Scenario {
    /// Reads and checks `path`; the error names the line and column.
    pub fn load(path: &Path) -> Result<Scenario, String> {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        Scenario::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Scenario, String> {
        // Enums as one-key maps (`on: {command: AT}`), as in the JSON of
        // the control API, not as YAML tags (`!command AT`).
        let document = yaml_serde::Deserializer::from_str(text);
        let scenario: Scenario = yaml_serde::with::singleton_map_recursive::deserialize(document)
            .map_err(|e| e.to_string())?;
        for (i, step) in scenario.steps.iter().enumerate() {
            if step.action.is_some() == step.peer.is_some() {
                return Err(format!("steps[{i}]: needs either `do:` or `peer:`"));
            }
        }
        Ok(scenario)
    }
}

/// What a modem's run of the scenario needs from its driver, each step.
pub(crate) struct Observed<'a> {
    pub now: u64,
    pub received: u64,
    pub open: &'a dyn Fn(LinkName) -> bool,
}

/// One modem's run: where it is, and what the host sent.
pub(crate) struct Run {
    scenario: std::sync::Arc<Scenario>,
    step: usize,
    /// When the current step started waiting, and when its trigger fired.
    waiting_since: u64,
    fired_at: Option<u64>,
    /// The host's current line, and the lines it sent (kept only while
    /// an expectation or a trigger can use them).
    line: Vec<u8>,
    commands: Vec<String>,
    /// The next expected line.
    expected: usize,
    verdict: Option<Verdict>,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    Failed(String),
}

/// Longest command line kept (ESP-AT's own limit is 256).
const MAX_LINE: usize = 1024;

impl Run {
    pub(crate) fn new(scenario: std::sync::Arc<Scenario>, now: u64) -> Run {
        Run {
            scenario,
            step: 0,
            waiting_since: now,
            fired_at: None,
            line: Vec::new(),
            commands: Vec::new(),
            expected: 0,
            verdict: None,
        }
    }

    /// Bytes the host wrote to the AT port.
    pub(crate) fn host_bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\r' || b == b'\n' {
                if !self.line.is_empty() {
                    let line = String::from_utf8_lossy(&self.line).into_owned();
                    self.line.clear();
                    self.command(line);
                }
            } else if self.line.len() < MAX_LINE {
                self.line.push(b);
            }
        }
    }

    fn command(&mut self, line: String) {
        if let Some(expect) = &self.scenario.expect {
            if expect
                .sent
                .get(self.expected)
                .is_some_and(|prefix| line.starts_with(prefix.as_str()))
            {
                self.expected += 1;
            }
        }
        // Only the current step's trigger can use it; keep a few.
        if self.commands.len() >= 64 {
            self.commands.remove(0);
        }
        self.commands.push(line);
    }

    /// The faults due now; call after anything happened and at
    /// [`Run::deadline`].
    pub(crate) fn due(&mut self, seen: &Observed<'_>) -> Vec<Action> {
        let mut faults = Vec::new();
        while let Some(step) = self.scenario.steps.get(self.step) {
            if self.fired_at.is_none() {
                let fired = match &step.on {
                    None => true,
                    Some(Trigger::Command(prefix)) => {
                        let hit = self.commands.iter().any(|c| c.starts_with(prefix.as_str()));
                        self.commands.clear();
                        hit
                    }
                    Some(Trigger::Received(n)) => seen.received >= *n,
                    Some(Trigger::Connected(link)) => (seen.open)(*link),
                };
                if !fired {
                    break;
                }
                self.fired_at = Some(if step.on.is_none() {
                    self.waiting_since
                } else {
                    seen.now
                });
            }
            let at = self
                .fired_at
                .unwrap_or(seen.now)
                .saturating_add(step.after_ms);
            if seen.now < at {
                break;
            }
            faults.extend(step.action.clone().map(Action::Fault));
            faults.extend(step.peer.clone().map(Action::Peer));
            self.step += 1;
            self.fired_at = None;
            self.waiting_since = seen.now;
        }
        if self.verdict.is_none() {
            self.verdict = self.check(seen.now, false);
        }
        faults
    }

    /// When [`Run::due`] must run again at the latest.
    pub(crate) fn deadline(&self) -> Option<u64> {
        let step = self.scenario.steps.get(self.step).and_then(|step| {
            let from = match (&step.on, self.fired_at) {
                (None, _) => Some(self.waiting_since),
                (Some(_), Some(at)) => Some(at),
                (Some(_), None) => None,
            };
            from.map(|at| at.saturating_add(step.after_ms))
        });
        let verdict = self
            .scenario
            .expect
            .as_ref()
            .and_then(|e| e.within_ms)
            .filter(|_| self.verdict.is_none());
        step.into_iter().chain(verdict).min()
    }

    /// The verdict, once known: passed when every expected line came (and
    /// every step ran), failed when time is up or the host left first.
    fn check(&self, now: u64, ended: bool) -> Option<Verdict> {
        let expect = self.scenario.expect.as_ref()?;
        let done = self.expected == expect.sent.len() && self.step == self.scenario.steps.len();
        if done {
            return Some(Verdict::Passed);
        }
        let out_of_time = expect.within_ms.is_some_and(|ms| now >= ms);
        if !out_of_time && !ended {
            return None;
        }
        Some(Verdict::Failed(match expect.sent.get(self.expected) {
            Some(missing) => format!("the host never sent a line starting {missing:?}"),
            None => format!(
                "step {} of {} never ran",
                self.step + 1,
                self.scenario.steps.len()
            ),
        }))
    }

    /// The verdict, once; `ended`: the host closed the port.
    pub(crate) fn take_verdict(&mut self, now: u64, ended: bool) -> Option<Verdict> {
        if self.verdict.is_none() {
            self.verdict = self.check(now, ended);
        }
        self.verdict.take().inspect(|_| {
            // Said once: later checks find nothing new.
            self.scenario = std::sync::Arc::new(Scenario {
                steps: Vec::new(),
                expect: None,
            });
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use wsat_proto::Link;

    fn run(text: &str) -> Run {
        Run::new(Arc::new(Scenario::parse(text).unwrap()), 0)
    }

    fn seen(now: u64, received: u64) -> Observed<'static> {
        Observed {
            now,
            received,
            open: &|link| link == LinkName(Link::Ws(0)),
        }
    }

    #[test]
    fn steps_wait_for_their_triggers_in_order() {
        let mut run = run("steps:\n\
             - after_ms: 100\n  do: {fault: reboot}\n\
             - on: {command: AT+WSOPEN}\n  after_ms: 50\n  do: {fault: ap_lost}\n\
             - on: {received: 10}\n  do: {fault: ap_back}\n\
             - on: {connected: ws0}\n  do: {fault: reset, link: ws0}\n");
        assert_eq!(run.deadline(), Some(100));
        assert!(run.due(&seen(99, 0)).is_empty());
        assert_eq!(
            run.due(&seen(100, 0)),
            [Action::Fault(ControlFault::Reboot {})]
        );
        assert_eq!(run.deadline(), None);
        run.host_bytes(b"AT\r\nAT+WSOPEN=0,\"ws://x\"\r");
        assert!(run.due(&seen(200, 0)).is_empty());
        assert_eq!(run.deadline(), Some(250));
        assert_eq!(
            run.due(&seen(250, 0)),
            [Action::Fault(ControlFault::ApLost {})]
        );
        assert!(run.due(&seen(260, 9)).is_empty());
        // Received and connected at once: both steps run.
        assert_eq!(
            run.due(&seen(270, 10)),
            [
                Action::Fault(ControlFault::ApBack {}),
                Action::Fault(ControlFault::Reset {
                    link: LinkName(Link::Ws(0))
                })
            ]
        );
    }

    #[test]
    fn the_verdict_says_what_the_host_did_not_send() {
        let text = "expect:\n  sent: [AT+CWJAP, AT+CIPSTART]\n  within_ms: 1000\n";
        let mut passing = run(text);
        passing.host_bytes(b"AT+CWJAP=\"a\",\"b\"\r\nAT\r\nAT+CIPSTART=\"TCP\",\"h\",1\r\n");
        passing.due(&seen(10, 0));
        assert_eq!(passing.take_verdict(10, false), Some(Verdict::Passed));
        assert_eq!(passing.take_verdict(20, true), None);
        let mut failing = run(text);
        failing.host_bytes(b"AT+CIPSTART=\"TCP\",\"h\",1\r\nAT+CWJAP\r\n");
        failing.due(&seen(10, 0));
        assert_eq!(failing.take_verdict(10, false), None);
        assert_eq!(failing.deadline(), Some(1000));
        failing.due(&seen(1000, 0));
        let Some(Verdict::Failed(why)) = failing.take_verdict(1000, false) else {
            panic!("no verdict");
        };
        assert!(why.contains("AT+CIPSTART"), "{why}");
    }

    #[test]
    fn bad_files_name_the_line_and_column() {
        for (bad, needle) in [
            ("steps:\n  - do: {fault: nope}\n", "line 2"),
            (
                "steps:\n  - on: {command: AT}\n    after: 5\n    do: {fault: reboot}\n",
                "unknown field",
            ),
            ("steps: [\n", "line"),
            ("steps:\n  - do: {fault: reset, link: ws9}\n", "no link"),
            ("expect: {sent: AT}\n", "line 1"),
            ("steps:\n  - after_ms: 5\n", "needs either"),
            (
                "steps:\n  - do: {fault: reboot}\n    peer: {control: \"127.0.0.1:1\", path: /mode}\n",
                "needs either",
            ),
            ("steps:\n  - peer: {control: nowhere, path: /mode}\n", "line 2"),
        ] {
            let error = Scenario::parse(bad).unwrap_err();
            assert!(error.contains(needle), "{bad:?}: {error}");
        }
    }
}
