//! The participant side's key store: a directory with one key pair per participant, in
//! python-paillier's `pheutil` JWK format so that `pheutil decrypt` can use the same files.
//!
//! - `<id>.priv.json`: the private key, mode 0600, owned by the user; a file readable by group or
//!   others, or owned by someone else, is refused on load (like ssh does with private keys).
//! - `<id>.pub.json`: the public key, mode 0644.
//!
//! The directory is created mode 0700 and checked on every load and save: one that group or
//! others may write to (they could swap a key and read the results meant for it), or that
//! another user owns, is refused with the command that fixes it.
//!
//! A private key is checked on every load (key type, size bounds, p·q = n, p ≠ q, equal
//! lengths, no small factor, one base-2 Miller–Rabin round per prime: see
//! `paillier::PrivateKey::from_own_primes`). The full Miller–Rabin rounds are for keys from
//! elsewhere; here they would cost more than the encryption the key is loaded for.
//!
//! Keys are created, never replaced: the private key is written to a temporary file in the same
//! directory (mode 0600 from the start, fsynced), then given its name with `link(2)`, which fails
//! when the name exists. Of two concurrent `producer keygen` runs for one participant exactly one
//! wins, the other fails with [`KeyStoreError::Exists`], and the winner's key stays intact; a
//! crash never leaves half a key behind. The public file, derived from the private key, follows
//! (renamed into place), so a crash between the two leaves a private key without its public
//! file, never the reverse.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
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
    #[error("participant {0} already has a key in the key store (a key is never replaced)")]
    Exists(ParticipantId),
    /// A key store directory others could tamper with.
    #[error("key store {dir} {problem}: {fix}")]
    UnsafeDirectory {
        /// The directory.
        dir: PathBuf,
        /// What is wrong with it.
        problem: String,
        /// The command or step that fixes it.
        fix: String,
    },
    /// A private key file that belongs to another user.
    #[error(
        "{path} is owned by uid {owner}, not by you (uid {me}); a private key must be your own"
    )]
    ForeignKey {
        /// The file.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The effective uid of this process.
        me: u32,
    },
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

    /// Whether a participant has a private key here (the directory is checked by the loads).
    pub fn contains(&self, participant: &ParticipantId) -> bool {
        self.private_path(participant).exists()
    }

    /// Stores a new key pair; refuses to replace an existing one, also against a concurrent
    /// save of the same participant's key ([`KeyStoreError::Exists`]; see the module
    /// documentation).
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
        // The private file decides who wins: it is created only if its name is free.
        write_new(&private, &private_json, 0o600).map_err(|e| match e {
            WriteError::Exists => KeyStoreError::Exists(participant.clone()),
            WriteError::Io(source) => KeyStoreError::Io {
                path: private.clone(),
                source,
            },
        })?;
        // Derived from the private key just created, so replacing a public file is safe: one
        // can only be here without its private key after a crash of an earlier save.
        write_replacing(&self.public_path(participant), &public_json, 0o644)
    }

    /// Loads a participant's private key, refusing a file readable by group or others.
    pub fn load_private(&self, participant: &ParticipantId) -> Result<PrivateKey, KeyStoreError> {
        self.check_dir()?;
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
        let metadata = file.metadata().map_err(io_err(&path))?;
        let me = rustix::process::geteuid().as_raw();
        if metadata.uid() != me {
            return Err(KeyStoreError::ForeignKey {
                path,
                owner: metadata.uid(),
                me,
            });
        }
        let mode = metadata.permissions().mode() & 0o777;
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
        self.check_dir()?;
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
        if !self.check_dir()? {
            return Ok(Vec::new());
        }
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

    /// Creates the directory (mode 0700) when it is missing, and checks it.
    fn ensure_dir(&self) -> Result<(), KeyStoreError> {
        if !self.dir.exists() {
            fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
            fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))
                .map_err(io_err(&self.dir))?;
        }
        self.check_dir().map(|_| ())
    }

    /// Refuses a directory another user owns or group or others may write to; false when it
    /// does not exist.
    fn check_dir(&self) -> Result<bool, KeyStoreError> {
        let metadata = match fs::metadata(&self.dir) {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err(&self.dir)(e)),
        };
        let unsafe_dir = |problem: String, fix: String| KeyStoreError::UnsafeDirectory {
            dir: self.dir.clone(),
            problem,
            fix,
        };
        if !metadata.is_dir() {
            return Err(unsafe_dir(
                "is not a directory".to_owned(),
                "give a directory with --key-store or KEY_STORE".to_owned(),
            ));
        }
        let me = rustix::process::geteuid().as_raw();
        if metadata.uid() != me {
            return Err(unsafe_dir(
                format!("is owned by uid {}, not by you (uid {me})", metadata.uid()),
                "use a key directory of your own (--key-store or KEY_STORE)".to_owned(),
            ));
        }
        let mode = metadata.permissions().mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(unsafe_dir(
                format!("may be written by group or others (mode {mode:o})"),
                format!("run `chmod 700 {}`", self.dir.display()),
            ));
        }
        Ok(true)
    }
}

/// Why [`write_new`] did not create its file.
enum WriteError {
    /// The name exists already.
    Exists,
    /// Anything else.
    Io(io::Error),
}

/// A temporary file next to `path`, created with exactly `mode` (never briefly wider), holding
/// `bytes`, fsynced. The caller gives it its name and removes it.
fn write_temporary(path: &Path, bytes: &[u8], mode: u32) -> io::Result<PathBuf> {
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
        file.sync_all()
    };
    match write() {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Creates `path` holding `bytes` with `mode`, failing with [`WriteError::Exists`] when `path`
/// exists: the complete file appears at once under its name (`link(2)` of a fsynced temporary
/// file, which never replaces a name), then the directory is fsynced.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), WriteError> {
    let tmp = write_temporary(path, bytes, mode).map_err(WriteError::Io)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(WriteError::Exists),
        Err(e) => return Err(WriteError::Io(e)),
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(WriteError::Io)
}

/// Writes `path` atomically with `mode`, replacing it if it exists (a fsynced temporary file
/// renamed over it, then the directory fsynced).
fn write_replacing(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyStoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = write_temporary(path, bytes, mode).map_err(io_err(path))?;
    let rename = || -> io::Result<()> {
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    };
    rename().map_err(|e| {
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

    #[test]
    fn a_directory_others_may_write_to_is_refused_naming_the_fix() {
        let store = temp_store();
        let id = ParticipantId::new("p-2").unwrap();
        store.save(&id, test_key()).unwrap();
        let dir_mode = fs::metadata(store.dir()).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700, "created 0700");
        for mode in [0o770, 0o702, 0o777] {
            fs::set_permissions(store.dir(), fs::Permissions::from_mode(mode)).unwrap();
            for err in [
                store.load_private(&id).unwrap_err(),
                store.load_public(&id, KeyBounds::default()).unwrap_err(),
                store.participants().unwrap_err(),
                store
                    .save(&ParticipantId::new("p-3").unwrap(), test_key())
                    .unwrap_err(),
            ] {
                assert!(
                    matches!(err, KeyStoreError::UnsafeDirectory { .. }),
                    "{mode:o}: {err}"
                );
                assert!(err.to_string().contains("chmod 700"), "{err}");
            }
        }
        // Readable by others is allowed (the private files are 0600 themselves).
        fs::set_permissions(store.dir(), fs::Permissions::from_mode(0o755)).unwrap();
        store.load_private(&id).unwrap();
        fs::remove_dir_all(store.dir()).unwrap();
    }

    #[test]
    fn a_directory_of_another_user_is_refused() {
        let me = rustix::process::geteuid().as_raw();
        let (store, cleanup) = if me == 0 {
            // As root: a directory handed to another user.
            let store = temp_store();
            fs::create_dir_all(store.dir()).unwrap();
            fs::set_permissions(store.dir(), fs::Permissions::from_mode(0o700)).unwrap();
            std::os::unix::fs::chown(store.dir(), Some(65534), Some(65534)).unwrap();
            (store, true)
        } else {
            // As anyone else: root's directory.
            (KeyStore::new("/"), false)
        };
        let err = store
            .load_private(&ParticipantId::new("p-4").unwrap())
            .unwrap_err();
        assert!(
            matches!(err, KeyStoreError::UnsafeDirectory { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("not by you"), "{err}");
        if cleanup {
            fs::remove_dir_all(store.dir()).unwrap();
        }
    }

    #[test]
    fn a_key_is_never_replaced_and_no_temporary_file_stays() {
        let store = temp_store();
        let id = ParticipantId::new("p-5").unwrap();
        store.save(&id, test_key()).unwrap();
        let before = fs::read(store.private_path(&id)).unwrap();
        let other = PrivateKey::generate(2048).unwrap();
        assert!(matches!(
            store.save(&id, &other),
            Err(KeyStoreError::Exists(_))
        ));
        // Also when the existence check before writing is passed (a concurrent save): the
        // create-only write itself refuses.
        assert!(matches!(
            write_new(&store.private_path(&id), b"{}", 0o600),
            Err(WriteError::Exists)
        ));
        assert_eq!(fs::read(store.private_path(&id)).unwrap(), before);
        let names: Vec<_> = fs::read_dir(store.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        fs::remove_dir_all(store.dir()).unwrap();
    }

    #[test]
    fn of_concurrent_saves_of_one_participant_exactly_one_wins() {
        // Threads released together all pass the existence check before any has written (each
        // write fsyncs): only the create-only link keeps them from replacing each other's key.
        const SAVERS: usize = 8;
        let store = temp_store();
        let id = ParticipantId::new("p-race").unwrap();
        let keys: Vec<PrivateKey> = (0..2)
            .map(|_| PrivateKey::generate(2048).unwrap())
            .collect();
        let start = std::sync::Barrier::new(SAVERS);
        let outcomes: Vec<(usize, Result<(), KeyStoreError>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..SAVERS)
                .map(|i| {
                    let (store, id, keys, start) = (&store, &id, &keys, &start);
                    scope.spawn(move || {
                        start.wait();
                        (i, store.save(id, &keys[i % 2]))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners: Vec<usize> = outcomes
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(i, _)| *i)
            .collect();
        assert_eq!(winners.len(), 1, "winners: {winners:?}");
        for (i, outcome) in &outcomes {
            if let Err(err) = outcome {
                assert!(matches!(err, KeyStoreError::Exists(_)), "saver {i}: {err}");
            }
        }
        let stored = store.load_private(&id).unwrap();
        assert_eq!(stored.public_key(), keys[winners[0] % 2].public_key());
        assert_eq!(
            &store.load_public(&id, KeyBounds::default()).unwrap(),
            keys[winners[0] % 2].public_key()
        );
        fs::remove_dir_all(store.dir()).unwrap();
    }

    fn test_key() -> &'static PrivateKey {
        static KEY: std::sync::OnceLock<PrivateKey> = std::sync::OnceLock::new();
        KEY.get_or_init(|| PrivateKey::generate(2048).unwrap())
    }
}
