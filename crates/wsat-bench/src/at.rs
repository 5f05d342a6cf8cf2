//! The host side of a modem's AT port: writes commands, reads what the modem
//! prints as a sequence of [`Event`]s, whatever order reports and result
//! codes come in.
use std::time::Duration;

use anyhow::{bail, Context as _};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// How long any single read or write may take before the bench gives up.
pub const WAIT: Duration = Duration::from_secs(30);
/// The input buffer; one read takes what is free of it.
const BUF_SIZE: usize = 256 * 1024;
/// `+WS_DATA` payloads up to this size are kept for the caller; larger ones
/// are only counted.
const KEEP_DATA: usize = 256;
const DATA_PREFIX: &[u8] = b"+WS_DATA:";

/// One thing the modem printed.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A `+WS_DATA:<id>,<len>,<data>\r\n` report (the default format, and
    /// `AT+WSDATAFMT=<id>,1,36` with one frame per message). `data` is kept
    /// only when short.
    Data { len: usize, data: Vec<u8> },
    /// The data prompt `>`.
    Prompt,
    /// Any other line, without its CR LF: `OK`, `SEND OK`, `ERROR`, reports.
    Line(String),
}

/// A host connection to a `wsat --tcp` modem.
pub struct AtPort {
    stream: TcpStream,
    /// Unread input is `buf[start..end]`.
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl AtPort {
    /// Connects: a modem found running (`--tcp` prints no `ready`).
    pub async fn connect(addr: std::net::SocketAddr) -> anyhow::Result<AtPort> {
        let stream = timeout(WAIT, TcpStream::connect(addr))
            .await
            .context("connecting to the modem timed out")?
            .context("connecting to the modem")?;
        stream.set_nodelay(true)?;
        Ok(AtPort {
            stream,
            buf: vec![0; BUF_SIZE].into_boxed_slice(),
            start: 0,
            end: 0,
        })
    }

    /// Connects and turns echo off.
    pub async fn connect_quiet(addr: std::net::SocketAddr) -> anyhow::Result<AtPort> {
        let mut port = AtPort::connect(addr).await?;
        port.command("ATE0").await?;
        Ok(port)
    }

    pub async fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        timeout(WAIT, self.stream.write_all(bytes))
            .await
            .context("writing to the AT port timed out")?
            .context("writing to the AT port")
    }

    /// Sends a command line and waits for `OK`; fails on `ERROR`. Reports
    /// that arrive meanwhile are dropped.
    pub async fn command(&mut self, line: &str) -> anyhow::Result<()> {
        self.write(format!("{line}\r\n").as_bytes()).await?;
        self.expect_line("OK")
            .await
            .with_context(|| format!("answer to {line}"))
    }

    /// Reads events until the line `want`; an `ERROR` line fails.
    pub async fn expect_line(&mut self, want: &str) -> anyhow::Result<()> {
        loop {
            match self.event().await? {
                Event::Line(line) if line == want => return Ok(()),
                Event::Line(line) if line == "ERROR" => bail!("the modem answered ERROR"),
                _ => {}
            }
        }
    }

    /// Reads exactly `bytes` (used where nothing else can come, e.g. the
    /// answer to `AT`).
    pub async fn expect_exact(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.need(bytes.len()).await?;
        let got = &self.buf[self.start..self.start + bytes.len()];
        if got != bytes {
            bail!(
                "expected {:?} on the AT port, got {:?}",
                String::from_utf8_lossy(bytes),
                String::from_utf8_lossy(got)
            );
        }
        self.start += bytes.len();
        Ok(())
    }

    /// The next thing the modem printed.
    pub async fn event(&mut self) -> anyhow::Result<Event> {
        loop {
            let rest = &self.buf[self.start..self.end];
            if rest.starts_with(b"\r\n") {
                self.start += 2;
                continue;
            }
            if rest.starts_with(b">") {
                self.start += 1;
                return Ok(Event::Prompt);
            }
            if rest.starts_with(DATA_PREFIX) {
                return self.data().await;
            }
            let undecided = rest.is_empty()
                || rest == b"\r"
                || (rest.len() < DATA_PREFIX.len() && DATA_PREFIX.starts_with(rest));
            if !undecided {
                if let Some(end) = find(rest, b"\r\n") {
                    let line = String::from_utf8_lossy(&rest[..end]).into_owned();
                    self.start += end + 2;
                    return Ok(Event::Line(line));
                }
            }
            self.fill().await?;
        }
    }

    /// `+WS_DATA:<id>,<len>,` then `len` bytes then CR LF.
    async fn data(&mut self) -> anyhow::Result<Event> {
        // The header is short: wait until its last comma is here.
        let header_end = loop {
            let rest = &self.buf[self.start..self.end];
            let after_prefix = &rest[DATA_PREFIX.len()..];
            let commas: Vec<usize> = after_prefix
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b',')
                .map(|(i, _)| i)
                .take(2)
                .collect();
            if commas.len() == 2 {
                break DATA_PREFIX.len() + commas[1] + 1;
            }
            if after_prefix.len() > 32 {
                bail!(
                    "malformed +WS_DATA header: {:?}",
                    String::from_utf8_lossy(rest)
                );
            }
            self.fill().await?;
        };
        let header = &self.buf[self.start..self.start + header_end];
        let fields = std::str::from_utf8(&header[DATA_PREFIX.len()..header.len() - 1])?;
        let len: usize = fields
            .split(',')
            .nth(1)
            .and_then(|len| len.parse().ok())
            .with_context(|| format!("bad +WS_DATA header {fields:?}"))?;
        self.start += header_end;
        let mut data = Vec::new();
        if len <= KEEP_DATA {
            self.need(len).await?;
            data.extend_from_slice(&self.buf[self.start..self.start + len]);
            self.start += len;
        } else {
            self.skip(len).await?;
        }
        self.expect_exact(b"\r\n").await?;
        Ok(Event::Data { len, data })
    }

    /// Drops `n` bytes of input.
    async fn skip(&mut self, mut n: usize) -> anyhow::Result<()> {
        loop {
            let have = (self.end - self.start).min(n);
            self.start += have;
            n -= have;
            if n == 0 {
                return Ok(());
            }
            self.fill().await?;
        }
    }

    /// Reads until at least `n` unread bytes are buffered.
    async fn need(&mut self, n: usize) -> anyhow::Result<()> {
        while self.end - self.start < n {
            self.fill().await?;
        }
        Ok(())
    }

    /// One read from the AT port into the buffer.
    async fn fill(&mut self) -> anyhow::Result<()> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end > BUF_SIZE / 2 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let read = timeout(WAIT, self.stream.read(&mut self.buf[self.end..])).await;
        let n = match read {
            Ok(result) => result.context("reading the AT port")?,
            Err(_) => bail!(
                "timed out reading the AT port; unread: {:?}",
                String::from_utf8_lossy(&self.buf[self.start..self.end])
            ),
        };
        if n == 0 {
            bail!("the modem closed the AT port");
        }
        self.end += n;
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
