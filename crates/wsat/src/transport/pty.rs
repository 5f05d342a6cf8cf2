//! `--pty PATH`: a pseudo-terminal whose slave host programs open like a
//! serial port, reached through a symlink at PATH.
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::pty::openpty;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::termios::{cfmakeraw, tcflush, tcgetattr, tcsetattr, FlushArg, SetArg};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use super::{tty_stream, TtyReader, TtyWriter};

/// A pseudo-terminal in raw mode with a symlink to its slave. The symlink
/// is removed when this is dropped.
pub(super) struct Pty {
    /// Kept open so that the master never sees a hang-up (reads failing with
    /// EIO) when a host closes the slave: the modem outlives host programs,
    /// and a host can open the slave again at any time.
    _slave: OwnedFd,
    master: Option<OwnedFd>,
    slave_path: PathBuf,
    link: PathBuf,
}

impl Pty {
    /// Opens a pty, puts its slave in raw mode (no echo, no line editing,
    /// 8 bits through) and points `link` at it. An existing symlink at
    /// `link` (left by a killed run) is replaced; any other file is not.
    pub(super) fn open(link: &Path) -> io::Result<Pty> {
        let pair = openpty(None, None)?;
        let mut termios = tcgetattr(pair.slave.as_fd())?;
        cfmakeraw(&mut termios);
        tcsetattr(pair.slave.as_fd(), SetArg::TCSANOW, &termios)?;
        let slave_path = nix::unistd::ttyname(pair.slave.as_fd())?;
        match std::fs::symlink_metadata(link) {
            Ok(meta) if meta.file_type().is_symlink() => std::fs::remove_file(link)?,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a symlink", link.display()),
                ))
            }
            Err(_) => {}
        }
        std::os::unix::fs::symlink(&slave_path, link)?;
        Ok(Pty {
            _slave: pair.slave,
            master: Some(pair.master),
            slave_path,
            link: link.to_path_buf(),
        })
    }

    /// The slave device, e.g. `/dev/pts/3`.
    pub(super) fn slave_path(&self) -> &Path {
        &self.slave_path
    }

    /// A message for every open of the slave by a host (inotify's IN_OPEN on
    /// the slave device: our own descriptor came from openpty, not an open
    /// of the path, so only hosts count). A thread waits on the inotify
    /// descriptor and ends when the receiver is gone.
    ///
    /// Output no host read before the open is dropped first, so the host
    /// sees `ready` as the first thing, as from a board that just booted (a
    /// UART keeps nothing for a host that is not listening).
    pub(super) fn watch_opens(&self) -> io::Result<UnboundedReceiver<()>> {
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC)?;
        inotify.add_watch(&self.slave_path, AddWatchFlags::IN_OPEN)?;
        let slave = self._slave.try_clone()?;
        let (opened, receiver) = unbounded_channel();
        std::thread::Builder::new()
            .name("pty-opens".into())
            .spawn(move || {
                while let Ok(events) = inotify.read_events() {
                    if events.is_empty() {
                        continue;
                    }
                    let _ = tcflush(slave.as_fd(), FlushArg::TCIFLUSH);
                    if opened.send(()).is_err() {
                        return;
                    }
                }
            })?;
        Ok(receiver)
    }

    /// The master side as the AT port. Only the first call gets it.
    pub(super) fn take_port(&mut self) -> io::Result<(TtyReader, TtyWriter)> {
        let master = self
            .master
            .take()
            .ok_or_else(|| io::Error::other("the pty's port was taken already"))?;
        tty_stream(master)
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        // Only our own link: another run may have replaced it meanwhile.
        if std::fs::read_link(&self.link).is_ok_and(|target| target == self.slave_path) {
            let _ = std::fs::remove_file(&self.link);
        }
    }
}
