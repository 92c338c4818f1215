//! Generated passwords and the credentials file they are written to, once.
//!
//! The file is the provisioning run's journal: a new user's password is appended (and synced to
//! disk) **before** the user is created on the broker. A run interrupted after that finds the
//! password in the file and creates the user with it, so no password is ever lost or replaced;
//! one interrupted before it generates a new one. The file is created with mode 0600 and never
//! truncated or rewritten, only appended to.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Length of generated passwords: 32 characters of 62 give about 190 bits.
pub const PASSWORD_LEN: usize = 32;

const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A credentials file problem.
#[derive(Debug, Error)]
pub enum CredentialsError {
    /// Reading, creating or writing the file failed.
    #[error("credentials file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The existing file is not one this tool wrote, or is not private.
    #[error("credentials file {path}: {reason}")]
    Refused {
        /// The file.
        path: PathBuf,
        /// Why it is not used.
        reason: String,
    },
    /// The operating system's random source failed.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

/// A password from the operating system's CSPRNG: letters and digits only, so it needs no
/// escaping in a URL, a CSV cell or a shell word.
pub fn generate_password() -> Result<String, CredentialsError> {
    let mut out = String::with_capacity(PASSWORD_LEN);
    let mut buf = [0u8; 64];
    while out.len() < PASSWORD_LEN {
        getrandom::fill(&mut buf).map_err(|err| CredentialsError::Random(err.to_string()))?;
        // Rejection sampling: 248 = 4 * 62, so the accepted bytes map uniformly.
        for &b in buf.iter().filter(|&&b| b < 248) {
            if out.len() == PASSWORD_LEN {
                break;
            }
            out.push(ALPHABET[usize::from(b % 62)] as char);
        }
    }
    Ok(out)
}

/// One line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
    /// The user's AMQP URL (password included), ready for `AMQP_URL`.
    pub amqp_url: String,
}

/// A credentials file: CSV `participant,password,amqp_url` (first column `user` for workers and
/// coordinators), mode 0600.
#[derive(Debug)]
pub struct CredentialsFile {
    path: PathBuf,
    first_column: &'static str,
    exists: bool,
    known: BTreeMap<String, String>,
}

impl CredentialsFile {
    /// Opens `path` for this run: an existing file must be a regular file of ours (the same
    /// header), not a link, and readable by nobody else; its passwords are read so that an
    /// interrupted run resumes with them. A missing file is only created when a row is appended.
    pub fn open(
        path: &Path,
        first_column: &'static str,
    ) -> Result<CredentialsFile, CredentialsError> {
        let refused = |reason: String| CredentialsError::Refused {
            path: path.to_owned(),
            reason,
        };
        let io = |source| CredentialsError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = CredentialsFile {
            path: path.to_owned(),
            first_column,
            exists: false,
            known: BTreeMap::new(),
        };
        let meta = match std::fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(file),
            Err(err) => return Err(io(err)),
        };
        if !meta.file_type().is_file() {
            return Err(refused(
                "exists and is not a regular file (a symbolic link?)".into(),
            ));
        }
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(refused(format!(
                "exists with mode {:o}: readable by others, so its passwords may be known (it is never rewritten: remove it or chmod 600 it)",
                meta.permissions().mode() & 0o777
            )));
        }
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_path(path)
            .map_err(|err| refused(format!("cannot be read as CSV: {err}")))?;
        let header = reader
            .headers()
            .map_err(|err| refused(format!("cannot be read as CSV: {err}")))?
            .clone();
        let expected = [first_column, "password", "amqp_url"];
        if header.iter().collect::<Vec<_>>() != expected {
            return Err(refused(format!(
                "has the header {:?}, not {:?}: not a credentials file for this command",
                header.iter().collect::<Vec<_>>().join(","),
                expected.join(",")
            )));
        }
        for (line, row) in reader.records().enumerate() {
            let row = row.map_err(|err| refused(format!("row {}: {err}", line + 2)))?;
            match (row.get(0), row.get(1)) {
                (Some(user), Some(password)) if !user.is_empty() && !password.is_empty() => {
                    file.known.insert(user.to_owned(), password.to_owned());
                }
                _ => return Err(refused(format!("row {}: no user or password", line + 2))),
            }
        }
        file.exists = true;
        Ok(file)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file existed when opened or has been created since.
    pub fn exists(&self) -> bool {
        self.exists
    }

    /// The password the file holds for `user` (written by an earlier, interrupted run).
    pub fn password_of(&self, user: &str) -> Option<&str> {
        self.known.get(user).map(String::as_str)
    }

    /// Appends `rows` and syncs them to disk before returning. Creates the file (mode 0600,
    /// failing if it appeared meanwhile) with its header when it did not exist.
    pub fn append(&mut self, rows: &[Credential]) -> Result<(), CredentialsError> {
        if rows.is_empty() {
            return Ok(());
        }
        let io = |source| CredentialsError::Io {
            path: self.path.clone(),
            source,
        };
        let created = !self.exists;
        let file: File = if created {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&self.path)
                .map_err(io)?
        } else {
            OpenOptions::new()
                .append(true)
                .open(&self.path)
                .map_err(io)?
        };
        let mut writer = csv::Writer::from_writer(Vec::new());
        let csv_error = |err: csv::Error| io(std::io::Error::other(err.to_string()));
        if created {
            writer
                .write_record([self.first_column, "password", "amqp_url"])
                .map_err(csv_error)?;
        }
        for row in rows {
            writer
                .write_record([&row.user, &row.password, &row.amqp_url])
                .map_err(csv_error)?;
        }
        let bytes = writer
            .into_inner()
            .map_err(|err| io(std::io::Error::other(err.to_string())))?;
        // One write of all rows, then fsync: the passwords are on disk before any user exists.
        let mut file = file;
        file.write_all(&bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
        if created {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                // The new directory entry too, so that the file survives a crash.
                if let Ok(d) = File::open(dir) {
                    let _ = d.sync_all();
                }
            }
            self.exists = true;
        }
        for row in rows {
            self.known.insert(row.user.clone(), row.password.clone());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_long_alphanumeric_and_different() {
        let a = generate_password().unwrap();
        let b = generate_password().unwrap();
        assert_eq!(a.len(), PASSWORD_LEN);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    fn row(user: &str) -> Credential {
        Credential {
            user: user.into(),
            password: format!("pw-{user}"),
            amqp_url: format!("amqp://{user}:pw-{user}@h:5672/v"),
        }
    }

    #[test]
    fn created_private_appended_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.csv");
        let mut file = CredentialsFile::open(&path, "participant").unwrap();
        assert!(!file.exists() && !path.exists());
        file.append(&[]).unwrap();
        assert!(!path.exists(), "nothing to write must not create the file");
        file.append(&[row("a")]).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        file.append(&[row("b")]).unwrap();
        let again = CredentialsFile::open(&path, "participant").unwrap();
        assert_eq!(again.password_of("a"), Some("pw-a"));
        assert_eq!(again.password_of("b"), Some("pw-b"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("participant,password,amqp_url\na,pw-a,"),
            "{text}"
        );
        // Another command's file is not ours to append to.
        assert!(matches!(
            CredentialsFile::open(&path, "user"),
            Err(CredentialsError::Refused { .. })
        ));
    }

    #[test]
    fn a_file_readable_by_others_or_a_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.csv");
        std::fs::write(&path, "participant,password,amqp_url\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            CredentialsFile::open(&path, "participant"),
            Err(CredentialsError::Refused { .. })
        ));
        let link = dir.path().join("link.csv");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(matches!(
            CredentialsFile::open(&link, "participant"),
            Err(CredentialsError::Refused { .. })
        ));
    }
}
