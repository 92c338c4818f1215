//! Checks that a binary holding private keys cannot leave them in a core dump: observed from
//! outside on the running process, in `/proc/<pid>/limits` and in who owns `/proc/<pid>/status`
//! (the kernel gives a non-dumpable process's `/proc/<pid>/*` files to root; not the
//! `/proc/<pid>` directory itself).

use std::io::ErrorKind;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use paillier::PrivateKey;
use pipeline::ParticipantId;

/// The uid the binary runs as: when the tests run as root, `nobody` (via `setpriv`), since a
/// root process's `/proc` entries belong to root whether it is dumpable or not.
const NOBODY: u32 = 65534;

/// A key store under a new temp directory with `key` for `participant`, owned by `uid` (the key
/// store refuses a directory or key of another user).
pub fn key_store_for(uid: u32, participant: &ParticipantId, key: &PrivateKey) -> PathBuf {
    let root = std::env::temp_dir().join(format!("hardening-{}", uuid::Uuid::new_v4()));
    let keys = root.join("keys");
    let store = participant::keystore::KeyStore::new(&keys);
    store.save(participant, key).expect("save the test key");
    if uid != effective_uid() {
        for path in [
            keys.clone(),
            store.private_path(participant),
            store.public_path(participant),
        ] {
            std::os::unix::fs::chown(&path, Some(uid), Some(uid)).expect("chown the key store");
        }
    }
    keys
}

/// This process's effective uid (the owner of the files it creates).
pub fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Runs `bin args` as a non-root user with core dumps allowed as far as the hard limit goes
/// (so that only the binary itself can have turned them off), against a "broker" that accepts
/// the TCP connection and never answers: once the connection arrives the binary is past its
/// start (and has loaded its key). Asserts that its core file limit is 0 and that it is not
/// dumpable, then kills it.
pub fn assert_no_core_dumps(bin: &str, args: &[&str], key_store: &Path) {
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind the silent broker");
    silent.set_nonblocking(true).expect("nonblocking");
    let port = silent.local_addr().expect("its address").port();
    let me = effective_uid();
    let runs_as = if me == 0 { NOBODY } else { me };

    // `ulimit -c unlimited` fails where the hard limit is lower; the soft limit then stays as
    // inherited, and the check of the dumpable flag still tells.
    let mut cmd = Command::new(if me == 0 { "setpriv" } else { "sh" });
    if me == 0 {
        cmd.args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "sh",
        ]);
    }
    cmd.arg("-c")
        .arg("ulimit -c unlimited 2>/dev/null; exec \"$0\" \"$@\"")
        .arg(bin)
        .args(args)
        .env(
            "AMQP_URL",
            format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
        )
        .env("KEY_STORE", key_store)
        .env("PIPELINE__BROKER__CONNECT_TIMEOUT", "60s")
        .env_remove("AMQP_PASSWORD_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .expect("start the binary (setpriv is needed as root)");
    let pid = child.id();

    let started = Instant::now();
    let connected = loop {
        match silent.accept() {
            Ok((stream, _)) => break Some(stream),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => panic!("accept: {e}"),
        }
        if child.try_wait().expect("wait").is_some() || started.elapsed() > Duration::from_secs(60)
        {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let observed = connected.as_ref().map(|_| {
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
        let owner = std::fs::metadata(format!("/proc/{pid}/status"))
            .expect("stat /proc/<pid>/status")
            .uid();
        (limits, owner)
    });
    let _ = child.kill();
    let output = child.wait_with_output().expect("collect the output");
    let Some((limits, owner)) = observed else {
        panic!(
            "{bin} never connected: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .expect("a core file size line");
    let values: Vec<&str> = core.split_whitespace().skip(4).take(2).collect();
    assert_eq!(
        values,
        ["0", "0"],
        "{bin}: core dumps still allowed: {core}"
    );
    assert_ne!(runs_as, 0);
    assert_eq!(
        owner, 0,
        "{bin}: /proc/{pid}/status belongs to uid {owner}, the process's own: it is still dumpable"
    );
}
