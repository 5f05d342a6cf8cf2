//! `AT+SYSMFG`, the certificate store, and the TLS material `AT+WSCFG` reads.
//!
//! ESP-AT keeps certificates in the key-value "manufacturing NVS" partition;
//! wsat keeps only the WebSocket and SSL client namespaces of it, and only binary
//! (type 8) entries, in the store the [`Platform`](super::Platform) provides.
use alloc::format;
use alloc::vec::Vec;

use super::commands::{Form, Reply};
use super::{ClientIdentity, DataTarget, Modem, ServerVerification, TlsPolicy};
use crate::at::{Args, AtError, ErrorKind};
use crate::pki;

/// ESP-AT's `<type>` for binary values; the only one wsat stores.
const TYPE_BINARY: i64 = 8;

const OP_ERASE: i64 = 0;
const OP_READ: i64 = 1;
const OP_WRITE: i64 = 2;

fn invalid(param: u16) -> AtError {
    AtError::new(ErrorKind::ParamInvalid, param)
}

/// Parameter 2, a namespace of ours.
fn namespace_arg(args: &Args) -> Result<&'static str, AtError> {
    pki::namespace(args.str(1)?).ok_or(invalid(2))
}

/// Parameter 3, a key of `namespace`, as text.
fn key_arg<'a>(args: &'a Args, namespace: &str) -> Result<&'a str, AtError> {
    let key = args.str(2)?;
    pki::key_index(namespace, key).ok_or(invalid(3))?;
    // Only ASCII passes `key_index`.
    core::str::from_utf8(key).map_err(|_| invalid(3))
}

impl Modem {
    /// `AT+SYSMFG?` lists the namespaces. `AT+SYSMFG=<op>,...`: 0 erases a
    /// key or a namespace, 1 reads (namespaces, a namespace's keys, a value
    /// or part of one), 2 writes a binary value after a prompt.
    pub(super) fn cmd_sysmfg(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        let Form::Set(p) = form else {
            self.list_namespaces();
            return Ok(Reply::Ok);
        };
        let args = Args::parse(p, 5)?;
        match args.int(0, OP_ERASE..=OP_WRITE)? {
            OP_ERASE => self.sysmfg_erase(&args),
            OP_READ => self.sysmfg_read(&args),
            _ => self.sysmfg_write(&args),
        }
    }

    fn list_namespaces(&mut self) {
        for namespace in pki::NAMESPACES {
            self.out
                .extend_from_slice(format!("+SYSMFG:\"{namespace}\"\r\n").as_bytes());
        }
    }

    fn sysmfg_erase(&mut self, args: &Args) -> Result<Reply, AtError> {
        if args.len() > 3 {
            return Err(AtError::new(ErrorKind::ParamCount, args.len() as u16));
        }
        let namespace = namespace_arg(args)?;
        let key = match args.given(2) {
            true => Some(key_arg(args, namespace)?),
            false => None,
        };
        match self.platform.store_erase(namespace, key) {
            true => Ok(Reply::Ok),
            false => Err(AtError::exec()),
        }
    }

    fn sysmfg_read(&mut self, args: &Args) -> Result<Reply, AtError> {
        if !args.given(1) {
            if args.len() > 1 {
                return Err(AtError::new(ErrorKind::ParamCount, args.len() as u16));
            }
            self.list_namespaces();
            return Ok(Reply::Ok);
        }
        let namespace = namespace_arg(args)?;
        if !args.given(2) {
            if args.len() > 3 {
                return Err(AtError::new(ErrorKind::ParamCount, args.len() as u16));
            }
            self.list_keys(namespace);
            return Ok(Reply::Ok);
        }
        let key = key_arg(args, namespace)?;
        let max = pki::MAX_ENTRY_LEN as i64;
        let offset = args.opt_int(3, 0..=max)?;
        let length = args.opt_int(4, 1..=max)?;
        if offset.is_some() != length.is_some() {
            return Err(AtError::new(ErrorKind::ParamCount, args.len() as u16));
        }
        let value = self
            .platform
            .store_read(namespace, key)
            .filter(|v| !v.is_empty())
            .ok_or(AtError::exec())?;
        // A part: from `offset`, at most `length` bytes (fewer at the end,
        // so a host can read in fixed steps without knowing the size).
        let (offset, length) = (offset.unwrap_or(0) as usize, length.unwrap_or(max) as usize);
        if offset >= value.len() {
            return Err(invalid(4));
        }
        let part = &value[offset..value.len().min(offset.saturating_add(length))];
        let head = format!(
            "+SYSMFG:\"{namespace}\",\"{key}\",{TYPE_BINARY},{},",
            part.len()
        );
        self.out.extend_from_slice(head.as_bytes());
        self.out.extend_from_slice(part);
        self.out.extend_from_slice(b"\r\n");
        Ok(Reply::Ok)
    }

    /// `+SYSMFG:"<namespace>","<key>",8` for each entry, by index.
    fn list_keys(&mut self, namespace: &'static str) {
        let mut indexes: Vec<u8> = self
            .platform
            .store_keys(namespace)
            .iter()
            .filter_map(|key| pki::key_index(namespace, key.as_bytes()))
            .collect();
        indexes.sort_unstable();
        indexes.dedup();
        for index in indexes {
            let key = pki::key(namespace, index);
            let line = format!("+SYSMFG:\"{namespace}\",\"{key}\",{TYPE_BINARY}\r\n");
            self.out.extend_from_slice(line.as_bytes());
        }
    }

    fn sysmfg_write(&mut self, args: &Args) -> Result<Reply, AtError> {
        let namespace = namespace_arg(args)?;
        let key = key_arg(args, namespace)?;
        // Numbers and strings have no use in these namespaces.
        if args.int(3, 1..=TYPE_BINARY)? != TYPE_BINARY {
            return Err(invalid(4));
        }
        let len = args.int(4, 1..=pki::MAX_ENTRY_LEN as i64)? as usize;
        let key = key.into();
        Ok(Reply::Prompt(len, DataTarget::SysMfg { namespace, key }))
    }

    /// The value typed after an `AT+SYSMFG` write's prompt.
    pub(super) fn sysmfg_data(&mut self, namespace: &str, key: &str, data: &[u8]) {
        if self.platform.store_write(namespace, key, data) {
            self.ok();
        } else {
            self.error(AtError::exec());
        }
    }

    /// The TLS policy of ESP-AT's `auth_mode` (0..=3), its material read
    /// from the store now, as ESP-AT does: a change to the store affects the
    /// next `AT+WSCFG`, not this one. What is missing is printed
    /// (certificate, key, CA, in that order) before the `ERROR`.
    ///
    /// The one place that knows what the modes mean: 1 and 3 present client
    /// certificate `pki`, 2 and 3 verify the server against CA `ca`.
    pub(super) fn load_tls(
        &mut self,
        namespaces: pki::Namespaces,
        auth_mode: u8,
        pki: u8,
        ca: u8,
    ) -> Result<TlsPolicy, AtError> {
        let client = if matches!(auth_mode, 1 | 3) {
            Some(ClientIdentity {
                cert: self.load_entry(namespaces.cert, pki, b"NO CERT FOUND\r\n")?,
                key: self.load_entry(namespaces.key, pki, b"NO PRVT_KEY FOUND\r\n")?,
            })
        } else {
            None
        };
        let server = if matches!(auth_mode, 2 | 3) {
            ServerVerification::Ca(self.load_entry(namespaces.ca, ca, b"NO CA FOUND\r\n")?)
        } else {
            ServerVerification::None
        };
        Ok(TlsPolicy {
            server,
            client,
            ..TlsPolicy::default()
        })
    }

    fn load_entry(
        &mut self,
        namespace: &str,
        index: u8,
        missing: &[u8],
    ) -> Result<Vec<u8>, AtError> {
        let entry = self
            .platform
            .store_read(namespace, &pki::key(namespace, index))
            .filter(|v| !v.is_empty());
        entry.ok_or_else(|| {
            self.out.extend_from_slice(missing);
            AtError::exec()
        })
    }
}
