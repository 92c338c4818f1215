//! The original demo's wire format against python-paillier (`phe`): python writes the demo
//! client's request (n and g as bare JSON integers of 617 digits, from python's json module),
//! Rust reads it, decrypts the values, multiplies them and answers with a [`DemoReply`], and
//! python decrypts the reply. The python side is `tests/interop/demo_peer.py`. Moved here from
//! `paillier/tests/interop_python.rs` with the format; the assertions are unchanged.
//!
//! Needs `python3` with `phe` (pip install phe gmpy2). Without it the test is skipped with a
//! message, unless the environment variable `CI` is set: then a missing peer is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use paillier::{KeyBounds, PrivateKey};
use pipeline::messages::{DemoPayload, DemoReply};
use serde::Deserialize;

/// Whether python-paillier can run here; panics when it cannot and `CI` is set.
fn python_peer_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import phe"])
        .output()
        .map(|out| out.status.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but `python3 -c 'import phe'` fails: install the interop peer with \
             `pip install phe gmpy2` (this test must not be skipped in CI)"
        );
        eprintln!(
            "SKIPPED: python-paillier demo interop test: `python3 -c 'import phe'` fails \
             (pip install phe gmpy2 to run it; with CI set this is a failure)"
        );
    }
    ok
}

/// A scratch directory, removed afterwards unless the test failed (then kept and printed).
struct WorkDir(PathBuf);

impl WorkDir {
    fn new() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let dir = std::env::temp_dir().join(format!(
            "pipeline-demo-interop-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("create scratch directory");
        WorkDir(dir)
    }

    fn read(&self, file: &str) -> String {
        let path = self.0.join(file);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    fn write(&self, file: &str, text: &str) {
        let path = self.0.join(file);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("interop files kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Runs `python3 tests/interop/demo_peer.py <command> <dir>`; fails with its output if it fails.
fn peer(command: &str, dir: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/demo_peer.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(command)
        .arg(dir)
        .output()
        .expect("spawn python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python peer `{command}` failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    eprintln!("python peer: {}", stdout.trim());
}

/// The primes of python's key, as decimal strings.
#[derive(Deserialize)]
struct PythonKey {
    p: String,
    q: String,
}

/// The demo inputs python encrypted and the factor the "server" multiplies them by.
#[derive(Deserialize)]
struct DemoExpected {
    inputs: Vec<i64>,
    factor: i64,
}

#[test]
fn python_demo_request_is_answered_and_python_decrypts_the_reply() {
    if !python_peer_available() {
        return;
    }
    let dir = WorkDir::new();
    peer("generate", &dir.0);

    let primes: PythonKey =
        serde_json::from_str(&dir.read("demo_key.json")).expect("python's primes parse");
    let key = PrivateKey::from_primes(
        primes.p.parse().expect("decimal p"),
        primes.q.parse().expect("decimal q"),
    )
    .expect("python's key is valid");
    let pk = key.public_key().clone();
    assert_eq!(pk.bits(), 2048);

    // The demo: a body from python's json module, n and g as bare integers of 617 digits.
    let body = dir.read("demo_request.json");
    assert!(
        body.contains(&format!("\"n\": {}", pk.n())),
        "the demo body must carry n as a bare JSON integer"
    );
    let payload: DemoPayload = serde_json::from_str(&body).expect("demo body parses");
    let (demo_key, values) = payload
        .decode(KeyBounds::default())
        .expect("demo body is valid");
    assert_eq!(demo_key, pk, "the demo body carries python's key");
    let expected: DemoExpected =
        serde_json::from_str(&dir.read("demo_expected.json")).expect("demo expectations");
    let plain: Vec<f64> = values
        .iter()
        .map(|v| key.decrypt_f64(v).expect("demo value decrypts"))
        .collect();
    let want: Vec<f64> = expected.inputs.iter().map(|&v| v as f64).collect();
    assert_eq!(plain, want, "demo values decrypt to python's inputs");
    let replies = values
        .iter()
        .map(|v| v.mul_i64(expected.factor).map(|x| x.obfuscated()))
        .collect::<Result<Vec<_>, _>>()
        .expect("demo multiplication");
    dir.write(
        "demo_reply.json",
        &serde_json::to_string(&DemoReply::new(&replies)).expect("serialise reply"),
    );

    peer("verify", &dir.0);
}
