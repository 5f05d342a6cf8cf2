//! The certificate store on disk: what `AT+SYSMFG` writes and `AT+WSCFG` reads.
//!
//! One file per entry, `<dir>/<namespace>/<key>.pem` (for example
//! `wss_ca/wss_ca.0.pem`), holding the bytes exactly as the host sent them,
//! so material can also be put in place with `cp`. Names are checked with
//! [`wsat_proto::pki`] before any path is built: only the three namespaces
//! and keys `<namespace>.<n>` exist, so no name can leave the directory.
//!
//! Writes are atomic: the value goes to a temporary file in the same
//! directory, is flushed to disk, and is renamed over the entry; then the
//! directory is flushed. A crash leaves the old value or the new one, never
//! part of one (at worst a stray temporary file, which is ignored).
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::runtime::{Handle, RuntimeFlavor};
use wsat_proto::pki;

/// Files larger than this are refused when read: no certificate is this big,
/// and a mistaken path must not fill memory.
const MAX_FILE_LEN: u64 = 4 * 1024 * 1024;
const EXTENSION: &str = ".pem";
/// Temporary files start with this; [`PkiStore::list`] skips them.
const TEMP_PREFIX: &str = ".tmp-";

/// Makes temporary names unique within this process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A certificate store in a directory.
#[derive(Clone, Debug)]
pub struct PkiStore {
    dir: PathBuf,
}

impl PkiStore {
    /// Opens the store in `dir`, creating it and its namespace directories
    /// (private to the user on Unix: private keys live here).
    pub fn open(dir: PathBuf) -> io::Result<PkiStore> {
        for namespace in pki::NAMESPACES {
            create_private_dir(&dir.join(namespace))?;
        }
        Ok(PkiStore { dir })
    }

    /// The per-user default: `$XDG_DATA_HOME/wsat/pki`, else
    /// `$HOME/.local/share/wsat/pki` (else `wsat-pki` in the current
    /// directory when neither is set).
    pub fn default_dir() -> PathBuf {
        default_dir_from(std::env::var_os("XDG_DATA_HOME"), std::env::var_os("HOME"))
    }

    /// The directory this store lives in.
    #[cfg(test)]
    fn dir(&self) -> &Path {
        &self.dir
    }

    /// The value of an entry; `None` when it does not exist.
    pub(crate) fn read(&self, namespace: &str, key: &str) -> io::Result<Option<Vec<u8>>> {
        let path = self.entry_path(namespace, key)?;
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut data = Vec::new();
        file.take(MAX_FILE_LEN + 1).read_to_end(&mut data)?;
        if data.len() as u64 > MAX_FILE_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is larger than {MAX_FILE_LEN} bytes", path.display()),
            ));
        }
        Ok(Some(data))
    }

    /// Replaces an entry with `data`, atomically (see the module docs).
    pub(crate) fn write(&self, namespace: &str, key: &str, data: &[u8]) -> io::Result<()> {
        let path = self.entry_path(namespace, key)?;
        let dir = self.dir.join(namespace);
        create_private_dir(&dir)?;
        let temp = dir.join(format!(
            "{TEMP_PREFIX}{key}-{}-{}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = write_new_file(&temp, data).and_then(|()| fs::rename(&temp, &path));
        if result.is_err() {
            // Best effort: the error that matters is the one returned.
            let _ = fs::remove_file(&temp);
        }
        result?;
        sync_dir(&dir)
    }

    /// Erases entry `key`, or with `None` every entry of the namespace.
    /// Returns false when the named entry did not exist.
    pub(crate) fn erase(&self, namespace: &str, key: Option<&str>) -> io::Result<bool> {
        let Some(key) = key else {
            for key in self.list(namespace)? {
                self.erase(namespace, Some(&key))?;
            }
            return Ok(true);
        };
        let path = self.entry_path(namespace, key)?;
        match fs::remove_file(&path) {
            Ok(()) => {
                sync_dir(&self.dir.join(namespace))?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The keys of a namespace's entries, by index. Files that are not
    /// entries (temporary files, other names) are ignored.
    pub(crate) fn list(&self, namespace: &str) -> io::Result<Vec<String>> {
        check_namespace(namespace)?;
        let entries = match fs::read_dir(self.dir.join(namespace)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut indexes = Vec::new();
        for entry in entries {
            let entry = entry?;
            if !entry.file_type()?.is_file() && !entry.path().is_file() {
                continue;
            }
            let name = entry.file_name();
            let Some(key) = name.to_str().and_then(|n| n.strip_suffix(EXTENSION)) else {
                continue;
            };
            if let Some(index) = pki::key_index(namespace, key.as_bytes()) {
                indexes.push(index);
            }
        }
        indexes.sort_unstable();
        Ok(indexes
            .into_iter()
            .map(|index| pki::key(namespace, index))
            .collect())
    }

    // The same operations shaped like `wsat_proto::Platform`'s store
    // methods: failures are logged here and the modem sees a plain no.
    // The core calls them synchronously from a modem's task, so the ones
    // that flush to disk run through `off_the_async_worker`.

    /// [`PkiStore::read`] for `Platform::store_read`.
    pub(crate) fn store_read(&self, namespace: &str, key: &str) -> Option<Vec<u8>> {
        self.read(namespace, key)
            .inspect_err(|e| tracing::warn!("certificate store: reading {key}: {e}"))
            .ok()
            .flatten()
    }

    /// [`PkiStore::write`] for `Platform::store_write`.
    pub(crate) fn store_write(&self, namespace: &str, key: &str, data: &[u8]) -> bool {
        off_the_async_worker(|| self.write(namespace, key, data))
            .inspect_err(|e| tracing::warn!("certificate store: writing {key}: {e}"))
            .is_ok()
    }

    /// [`PkiStore::erase`] for `Platform::store_erase`.
    pub(crate) fn store_erase(&self, namespace: &str, key: Option<&str>) -> bool {
        let what = key.unwrap_or(namespace);
        off_the_async_worker(|| self.erase(namespace, key))
            .inspect_err(|e| tracing::warn!("certificate store: erasing {what}: {e}"))
            .unwrap_or(false)
    }

    /// [`PkiStore::list`] for `Platform::store_keys`.
    pub(crate) fn store_keys(&self, namespace: &str) -> Vec<String> {
        self.list(namespace)
            .inspect_err(|e| tracing::warn!("certificate store: listing {namespace}: {e}"))
            .unwrap_or_default()
    }

    /// The file of an entry, after checking both names.
    fn entry_path(&self, namespace: &str, key: &str) -> io::Result<PathBuf> {
        check_namespace(namespace)?;
        if pki::key_index(namespace, key.as_bytes()).is_none() {
            return Err(invalid_name("key", key));
        }
        Ok(self.dir.join(namespace).join(format!("{key}{EXTENSION}")))
    }
}

/// Runs `work`, which blocks on the disk (an fsync takes milliseconds, far
/// longer on a busy or slow disk), without stalling the other modems whose
/// tasks share this worker thread. On a multi-thread runtime,
/// `block_in_place` first hands this worker's other tasks to another
/// thread. On a current-thread runtime that is impossible (it panics
/// there): every modem shares the one thread anyway, so the work just runs,
/// as it does outside any runtime, where nothing else waits.
fn off_the_async_worker<T>(work: impl FnOnce() -> T) -> T {
    match Handle::try_current() {
        Ok(runtime) if runtime.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

fn default_dir_from(xdg_data_home: Option<OsString>, home: Option<OsString>) -> PathBuf {
    // The XDG spec says to ignore a relative XDG_DATA_HOME.
    let data_home = xdg_data_home
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            home.filter(|h| !h.is_empty())
                .map(|h| Path::new(&h).join(".local").join("share"))
        });
    match data_home {
        Some(dir) => dir.join("wsat").join("pki"),
        None => PathBuf::from("wsat-pki"),
    }
}

fn check_namespace(namespace: &str) -> io::Result<()> {
    match pki::namespace(namespace.as_bytes()) {
        Some(_) => Ok(()),
        None => Err(invalid_name("namespace", namespace)),
    }
}

fn invalid_name(what: &str, name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("not a certificate store {what}: {name:?}"),
    )
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Creates `path` (it must not exist), writes `data` and flushes it to disk.
fn write_new_file(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(data)?;
    file.sync_all()
}

/// Makes a rename or removal in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    // Elsewhere a directory cannot be opened as a file; the rename stands.
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, PkiStore) {
        let temp = tempfile::tempdir().unwrap();
        let store = PkiStore::open(temp.path().join("pki")).unwrap();
        (temp, store)
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn round_trip_is_byte_for_byte() {
        let (_temp, store) = store();
        let mut pem = b"-----BEGIN CERTIFICATE-----\r\nMIIB\n".to_vec();
        pem.extend_from_slice(&[0, 0xFF, b'\r', b'\n']);
        store.write("wss_ca", "wss_ca.0", &pem).unwrap();
        assert_eq!(store.read("wss_ca", "wss_ca.0").unwrap(), Some(pem.clone()));
        // One plain file per entry, and no temporary file left behind.
        let file = store.dir().join("wss_ca").join("wss_ca.0.pem");
        assert_eq!(fs::read(&file).unwrap(), pem);
        assert_eq!(files_in(&store.dir().join("wss_ca")), ["wss_ca.0.pem"]);
        // Replacing.
        store.write("wss_ca", "wss_ca.0", b"second").unwrap();
        assert_eq!(
            store.read("wss_ca", "wss_ca.0").unwrap(),
            Some(b"second".to_vec())
        );
        assert_eq!(files_in(&store.dir().join("wss_ca")), ["wss_ca.0.pem"]);
        assert_eq!(store.read("wss_ca", "wss_ca.1").unwrap(), None);
        // Reopening sees the same entries.
        let again = PkiStore::open(store.dir().to_path_buf()).unwrap();
        assert_eq!(
            again.store_read("wss_ca", "wss_ca.0"),
            Some(b"second".to_vec())
        );
    }

    #[cfg(unix)]
    #[test]
    fn entries_and_directories_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let (_temp, store) = store();
        store.write("wss_key", "wss_key.0", b"secret").unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&store.dir().join("wss_key")), 0o700);
        assert_eq!(mode(&store.dir().join("wss_key/wss_key.0.pem")), 0o600);
    }

    #[test]
    fn list_by_index_ignoring_other_files() {
        let (_temp, store) = store();
        assert!(store.list("wss_cert").unwrap().is_empty());
        for key in ["wss_cert.10", "wss_cert.2", "wss_cert.0"] {
            store.write("wss_cert", key, b"x").unwrap();
        }
        store.write("wss_key", "wss_key.5", b"x").unwrap();
        let dir = store.dir().join("wss_cert");
        // A crash's leftover, a stray file, a non-canonical name, a directory.
        fs::write(dir.join(".tmp-wss_cert.3-1-1"), b"half").unwrap();
        fs::write(dir.join("notes.txt"), b"").unwrap();
        fs::write(dir.join("wss_cert.01.pem"), b"").unwrap();
        fs::write(dir.join("wss_cert.4"), b"").unwrap();
        fs::create_dir(dir.join("wss_cert.7.pem")).unwrap();
        assert_eq!(
            store.list("wss_cert").unwrap(),
            ["wss_cert.0", "wss_cert.2", "wss_cert.10"]
        );
        assert_eq!(store.store_keys("wss_key"), ["wss_key.5"]);
    }

    #[test]
    fn erase_a_key_or_a_namespace() {
        let (_temp, store) = store();
        store.write("wss_ca", "wss_ca.0", b"a").unwrap();
        store.write("wss_ca", "wss_ca.1", b"b").unwrap();
        store.write("wss_cert", "wss_cert.0", b"c").unwrap();
        assert!(store.erase("wss_ca", Some("wss_ca.0")).unwrap());
        assert!(!store.erase("wss_ca", Some("wss_ca.0")).unwrap());
        assert!(!store.store_erase("wss_ca", Some("wss_ca.0")));
        assert_eq!(store.list("wss_ca").unwrap(), ["wss_ca.1"]);
        assert!(store.erase("wss_ca", None).unwrap());
        assert!(store.list("wss_ca").unwrap().is_empty());
        // An empty namespace erases fine; others are untouched.
        assert!(store.store_erase("wss_ca", None));
        assert_eq!(store.list("wss_cert").unwrap(), ["wss_cert.0"]);
    }

    #[test]
    fn names_never_become_paths_outside_the_store() {
        let (temp, store) = store();
        let bad = [
            ("wss_ca", "../wss_ca.0"),
            ("wss_ca", "wss_ca.0/../../x"),
            ("wss_ca", "wss_ca.0/"),
            ("wss_ca", "/etc/passwd"),
            ("wss_ca", "wss_cert.0"),
            ("wss_ca", "wss_ca.00"),
            ("wss_ca", "wss_ca.256"),
            ("wss_ca", ""),
            ("..", "wss_ca.0"),
            ("wss_ca/..", "wss_ca.0"),
            ("server_ca", "server_ca.0"),
            ("client_ca", "wss_ca.0"),
            ("", "wss_ca.0"),
        ];
        for (namespace, key) in bad {
            let err = store.write(namespace, key, b"x").unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{namespace} {key}");
            let err = store.read(namespace, key).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
            let err = store.erase(namespace, Some(key)).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
            assert!(!store.store_write(namespace, key, b"x"));
            assert_eq!(store.store_read(namespace, key), None);
        }
        assert!(store.list("../x").is_err());
        assert!(store.store_keys("../x").is_empty());
        // Nothing was created beside the store.
        assert_eq!(files_in(temp.path()), ["pki"]);
        assert_eq!(
            files_in(store.dir()),
            [
                "client_ca",
                "client_cert",
                "client_key",
                "wss_ca",
                "wss_cert",
                "wss_key"
            ]
        );
    }

    #[test]
    fn a_failed_write_keeps_the_old_value_and_leaves_no_temp_file() {
        let (_temp, store) = store();
        store.write("wss_ca", "wss_ca.0", b"old").unwrap();
        // The rename cannot replace a directory: the write fails at the end.
        let blocked = store.dir().join("wss_ca").join("wss_ca.1.pem");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("inside"), b"").unwrap();
        assert!(store.write("wss_ca", "wss_ca.1", b"new").is_err());
        assert!(!store.store_write("wss_ca", "wss_ca.1", b"new"));
        assert_eq!(
            files_in(&store.dir().join("wss_ca")),
            ["wss_ca.0.pem", "wss_ca.1.pem"]
        );
        assert_eq!(
            store.read("wss_ca", "wss_ca.0").unwrap(),
            Some(b"old".to_vec())
        );
        // Reading a directory where an entry should be is an error, not a panic.
        assert!(store.read("wss_ca", "wss_ca.1").is_err());
        assert_eq!(store.store_read("wss_ca", "wss_ca.1"), None);
    }

    #[test]
    fn a_namespace_removed_behind_our_back_is_recreated() {
        let (_temp, store) = store();
        fs::remove_dir_all(store.dir().join("wss_key")).unwrap();
        assert_eq!(store.read("wss_key", "wss_key.0").unwrap(), None);
        assert!(store.list("wss_key").unwrap().is_empty());
        store.write("wss_key", "wss_key.0", b"k").unwrap();
        assert_eq!(
            store.read("wss_key", "wss_key.0").unwrap(),
            Some(b"k".to_vec())
        );
    }

    /// On a one-worker multi-thread runtime, a task blocked in
    /// `off_the_async_worker` does not keep another task from running: the
    /// blocked work waits for that task, and would time out without the
    /// hand-over.
    #[test]
    fn blocking_work_leaves_the_worker_to_other_tasks() {
        use std::sync::mpsc;
        use std::time::Duration;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        runtime.block_on(async {
            let (started_tx, started) = tokio::sync::oneshot::channel();
            let (tx, rx) = mpsc::channel();
            let blocked = tokio::spawn(async move {
                off_the_async_worker(|| {
                    started_tx.send(()).unwrap();
                    rx.recv_timeout(Duration::from_secs(10))
                })
            });
            started.await.unwrap();
            tokio::spawn(async move { tx.send(()).unwrap() })
                .await
                .unwrap();
            assert_eq!(blocked.await.unwrap(), Ok(()));
        });
    }

    /// The store's writes from a modem's task on either runtime, and from
    /// no runtime at all.
    #[test]
    fn platform_writes_work_in_any_runtime_or_none() {
        let (_temp, store) = store();
        assert!(store.store_write("wss_ca", "wss_ca.0", b"none"));
        assert!(store.store_erase("wss_ca", Some("wss_ca.0")));
        let multi = tokio::runtime::Builder::new_multi_thread().build().unwrap();
        let current = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for (runtime, value) in [(multi, b"multi"), (current, b"curnt")] {
            let store = store.clone();
            let task = runtime.spawn(async move {
                let written = store.store_write("wss_ca", "wss_ca.1", value);
                let read = store.store_read("wss_ca", "wss_ca.1");
                let erased = store.store_erase("wss_ca", None);
                (written, read, erased, store.store_keys("wss_ca"))
            });
            let (written, read, erased, left) = runtime.block_on(task).unwrap();
            assert!(written && erased);
            assert_eq!(read.as_deref(), Some(&value[..]));
            assert!(left.is_empty());
        }
    }

    #[test]
    fn default_dir_follows_xdg() {
        let os = |s: &str| Some(OsString::from(s));
        assert_eq!(
            default_dir_from(os("/data"), os("/home/u")),
            PathBuf::from("/data/wsat/pki")
        );
        assert_eq!(
            default_dir_from(None, os("/home/u")),
            PathBuf::from("/home/u/.local/share/wsat/pki")
        );
        // A relative XDG_DATA_HOME is ignored, as the spec says.
        assert_eq!(
            default_dir_from(os("rel"), os("/home/u")),
            PathBuf::from("/home/u/.local/share/wsat/pki")
        );
        assert_eq!(default_dir_from(None, os("")), PathBuf::from("wsat-pki"));
        assert_eq!(default_dir_from(None, None), PathBuf::from("wsat-pki"));
        assert!(
            PkiStore::default_dir().ends_with("wsat/pki") || !PkiStore::default_dir().is_absolute()
        );
    }
}
