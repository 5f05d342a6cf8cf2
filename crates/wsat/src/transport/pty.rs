//! `--pty PATH`: a pseudo-terminal whose slave host programs open like a
//! serial port, reached through a symlink at PATH.
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::pty::openpty;
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};

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
