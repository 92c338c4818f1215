//! The broker password never reaches the producer's output: not in `--help` (clap would show
//! `AMQP_URL`'s value), not in the error of an unreachable broker or an unparsable URL, not in
//! a trace-level log; and a password file others may read is refused.

use std::path::PathBuf;
use std::time::Duration;

use test_support::leaks::{self, PASSWORD};

const BIN: &str = env!("CARGO_BIN_EXE_producer");
const LIMIT: Duration = Duration::from_secs(60);

fn key_store_with_key(participant: &str) -> PathBuf {
    let keys = std::env::temp_dir()
        .join(format!("producer-leak-{}", uuid::Uuid::new_v4()))
        .join("keys");
    let out = leaks::run(
        {
            let mut cmd = leaks::command(
                BIN,
                &leaks::url_with_password(),
                &["keygen", "--participant", participant, "--bits", "2048"],
            );
            cmd.env("KEY_STORE", &keys);
            cmd
        },
        LIMIT,
    );
    leaks::assert_no_password("producer keygen", &out);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    keys
}

#[test]
fn help_does_not_show_the_password() {
    leaks::assert_help_hides_the_password(BIN, &["keygen", "submit", "enroll", "study-json"]);
}

#[test]
fn failures_and_logs_do_not_show_the_password() {
    let keys = key_store_with_key("p-leak");
    let submit = [
        "submit",
        "--participant",
        "p-leak",
        "--reading",
        "glucose=5.4",
        "-vv",
    ];

    // Refused broker, password in the URL: the error shows the URL redacted.
    let mut cmd = leaks::command(BIN, &leaks::url_with_password(), &submit);
    cmd.env("KEY_STORE", &keys);
    let out = leaks::run(cmd, LIMIT);
    let (_, stderr) = leaks::assert_no_password("producer submit, refused broker", &out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("cannot connect to the broker at amqp://leak:***@"),
        "{stderr}"
    );

    // The same with the password from a file (mode 0600) and none in the URL.
    let file = leaks::password_file(0o600);
    let url = format!("amqp://leak@127.0.0.1:{}/%2f", leaks::refused_port());
    let mut cmd = leaks::command(BIN, &url, &submit);
    cmd.env("KEY_STORE", &keys).env("AMQP_PASSWORD_FILE", &file);
    let out = leaks::run(cmd, LIMIT);
    let (_, stderr) = leaks::assert_no_password("producer submit, password file", &out);
    assert!(
        stderr.contains("cannot connect to the broker at amqp://leak:***@"),
        "{stderr}"
    );

    // A URL the AMQP parser quotes whole in its error.
    let mut cmd = leaks::command(BIN, &leaks::unparsable_url_with_password(), &submit);
    cmd.env("KEY_STORE", &keys);
    let out = leaks::run(cmd, LIMIT);
    let (_, stderr) = leaks::assert_no_password("producer submit, unparsable URL", &out);
    assert!(!out.status.success());
    assert!(stderr.contains("broker.url"), "{stderr}");

    // --amqp-url on the command line: its value is the caller's, but nothing echoes it back.
    let mut cmd = leaks::command(BIN, "", &submit);
    cmd.env("KEY_STORE", &keys)
        .env_remove("AMQP_URL")
        .args(["--amqp-url", &leaks::url_with_password()]);
    let out = leaks::run(cmd, LIMIT);
    leaks::assert_no_password("producer submit --amqp-url", &out);
    assert!(!out.status.success());

    std::fs::remove_dir_all(file.parent().unwrap()).unwrap();
    std::fs::remove_dir_all(keys.parent().unwrap()).unwrap();
}

#[test]
fn a_password_file_others_may_read_is_refused() {
    let file = leaks::password_file(0o644);
    let url = format!("amqp://leak@127.0.0.1:{}/%2f", leaks::refused_port());
    let mut cmd = leaks::command(BIN, &url, &["study-json"]);
    cmd.arg("--amqp-password-file").arg(&file);
    let out = leaks::run(cmd, LIMIT);
    let (stdout, stderr) = leaks::assert_no_password("producer with a 0644 password file", &out);
    assert!(!out.status.success(), "accepted: {stdout}");
    assert!(stderr.contains("chmod 600"), "{stderr}");
    assert!(!stderr.contains(PASSWORD));
    std::fs::remove_dir_all(file.parent().unwrap()).unwrap();
}
