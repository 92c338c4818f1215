//! The participant side's key store: a directory with one key pair per participant, in
//! python-paillier's `pheutil` JWK format so that `pheutil decrypt` can use the same files.
//!
//! - `<id>.priv.json`: the private key, mode 0600; a file readable by group or others is refused
//!   on load (like ssh does with private keys).
//! - `<id>.pub.json`: the public key, mode 0644.
//!
//! A private key is checked on every load (key type, size bounds, p·q = n, p ≠ q, equal
//! lengths, no small factor, one base-2 Miller–Rabin round per prime: see
//! `paillier::PrivateKey::from_own_primes`). The full Miller–Rabin rounds are for keys from
//! elsewhere; here they would cost more than the encryption the key is loaded for.
//!
//! Files are written atomically (temporary file in the same directory, fsync, rename), so a crash
//! never leaves half a key behind, and an existing key is never overwritten.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use paillier::json::{PrivateJwk, PublicJwk};
use paillier::{KeyBounds, PrivateKey, PublicKey};
use thiserror::Error;

use pipeline::ParticipantId;

/// Key store failures.
#[derive(Debug, Error)]
pub enum KeyStoreError {
    /// No key for this participant.
    #[error(
        "no key for participant {participant} in {dir} (create one with `producer keygen --participant {participant}`)"
    )]
    Missing {
        /// The participant.
        participant: ParticipantId,
        /// The key store directory.
        dir: PathBuf,
    },
    /// Refusing to overwrite an existing key.
    #[error("participant {0} already has a key in the key store")]
    Exists(ParticipantId),
    /// A private key file others may read.
    #[error("{path} is readable by group or others (mode {mode:o}); run `chmod 600 {path}`")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A key file is not a valid JWK or not a valid key.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// A directory of participant keys.
#[derive(Debug, Clone)]
pub struct KeyStore {
    dir: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> KeyStoreError + '_ {
    move |source| KeyStoreError::Io {
        path: path.to_owned(),
        source,
    }
}

impl KeyStore {
    /// A key store at `dir` (created, mode 0700, on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        KeyStore { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of a participant's private key file.
    pub fn private_path(&self, participant: &ParticipantId) -> PathBuf {
        self.dir.join(format!("{participant}.priv.json"))
    }

    /// Path of a participant's public key file.
    pub fn public_path(&self, participant: &ParticipantId) -> PathBuf {
        self.dir.join(format!("{participant}.pub.json"))
    }

    /// Whether a participant has a private key here.
    pub fn contains(&self, participant: &ParticipantId) -> bool {
        self.private_path(participant).exists()
    }

    /// Stores a new key pair; refuses to replace an existing one.
    pub fn save(&self, participant: &ParticipantId, key: &PrivateKey) -> Result<(), KeyStoreError> {
        self.ensure_dir()?;
        let private = self.private_path(participant);
        if private.exists() {
            return Err(KeyStoreError::Exists(participant.clone()));
        }
        let kid = format!("{participant} {}", key.public_key().fingerprint());
        let public_json = serde_json::to_vec_pretty(&PublicJwk::new(key.public_key(), kid.clone()))
            .expect("a JWK always serialises");
        let private_json =
            serde_json::to_vec_pretty(&PrivateJwk::new(key, kid)).expect("a JWK always serialises");
        // Public half first: a private key without its public file is still complete, the reverse
        // would look like a key that exists.
        write_atomic(&self.public_path(participant), &public_json, 0o644)?;
        write_atomic(&private, &private_json, 0o600)
    }

    /// Loads a participant's private key, refusing a file readable by group or others.
    pub fn load_private(&self, participant: &ParticipantId) -> Result<PrivateKey, KeyStoreError> {
        let path = self.private_path(participant);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(KeyStoreError::Missing {
                    participant: participant.clone(),
                    dir: self.dir.clone(),
                });
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let mode = file.metadata().map_err(io_err(&path))?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyStoreError::Permissions { path, mode });
        }
        let jwk: PrivateJwk = serde_json::from_reader(io::BufReader::new(file)).map_err(|e| {
            KeyStoreError::Invalid {
                path: path.clone(),
                reason: format!("not a python-paillier private key (JWK): {e}"),
            }
        })?;
        // One's own stored key: the consistency checks and a cheap primality check (see
        // `PrivateKey::from_own_primes`); loaded on every encryption and decryption.
        jwk.to_own_private_key_with_bounds(KeyBounds::default())
            .map_err(|e| KeyStoreError::Invalid {
                path,
                reason: e.to_string(),
            })
    }

    /// Loads a participant's public key.
    pub fn load_public(
        &self,
        participant: &ParticipantId,
        bounds: KeyBounds,
    ) -> Result<PublicKey, KeyStoreError> {
        let path = self.public_path(participant);
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(KeyStoreError::Missing {
                    participant: participant.clone(),
                    dir: self.dir.clone(),
                });
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let jwk: PublicJwk = serde_json::from_slice(&text).map_err(|e| KeyStoreError::Invalid {
            path: path.clone(),
            reason: format!("not a python-paillier public key (JWK): {e}"),
        })?;
        jwk.to_public_key(bounds)
            .map_err(|e| KeyStoreError::Invalid {
                path,
                reason: e.to_string(),
            })
    }

    /// Participants with a private key here, sorted (files with other names are ignored).
    pub fn participants(&self) -> Result<Vec<ParticipantId>, KeyStoreError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&self.dir)(e)),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err(&self.dir))?;
            let name = entry.file_name();
            if let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".priv.json"))
                && let Ok(id) = ParticipantId::new(id)
            {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    fn ensure_dir(&self) -> Result<(), KeyStoreError> {
        if !self.dir.exists() {
            fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
            fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))
                .map_err(io_err(&self.dir))?;
        }
        Ok(())
    }
}

/// Writes `bytes` to `path` atomically with `mode`: a temporary file created with that mode (never
/// briefly wider), fsynced, renamed over `path`, then the directory fsynced.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyStoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .map_or_else(|| "key".into(), |n| n.to_string_lossy()),
        uuid::Uuid::new_v4()
    ));
    let write = || -> io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have narrowed the mode; make it exact.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_err(path)(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_store() -> KeyStore {
        KeyStore::new(std::env::temp_dir().join(format!("keystore-test-{}", uuid::Uuid::new_v4())))
    }

    #[test]
    fn keys_round_trip_with_private_file_0600() {
        let store = temp_store();
        let id = ParticipantId::new("p-1").unwrap();
        let key = PrivateKey::generate(2048).unwrap();
        store.save(&id, &key).unwrap();
        let mode = fs::metadata(store.private_path(&id))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = store.load_private(&id).unwrap();
        assert_eq!(loaded.public_key(), key.public_key());
        let public = store.load_public(&id, KeyBounds::default()).unwrap();
        assert_eq!(&public, key.public_key());
        assert_eq!(store.participants().unwrap(), vec![id.clone()]);
        assert!(matches!(
            store.save(&id, &key),
            Err(KeyStoreError::Exists(_))
        ));

        fs::set_permissions(store.private_path(&id), fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            store.load_private(&id),
            Err(KeyStoreError::Permissions { mode: 0o644, .. })
        ));
        fs::remove_dir_all(store.dir()).unwrap();
    }

    #[test]
    fn a_missing_key_says_how_to_create_one() {
        let store = temp_store();
        let err = store
            .load_private(&ParticipantId::new("nobody").unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("producer keygen"), "{err}");
    }
}
