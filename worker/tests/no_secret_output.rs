//! The broker password never reaches the worker's output: not in `--help` (clap would show
//! `AMQP_URL`'s value), not in its retries against an unreachable broker or a broker refusing
//! the login at trace level (lapin traces the login frame), not in the error of an unparsable
//! URL.

use std::time::Duration;

use test_support::leaks;

const BIN: &str = env!("CARGO_BIN_EXE_worker");

#[test]
fn help_does_not_show_the_password() {
    leaks::assert_help_hides_the_password(BIN, &[]);
}

#[test]
fn retries_and_errors_do_not_show_the_password() {
    // The worker retries for ever: stopped after a few attempts.
    let out = leaks::run(
        leaks::command(BIN, &leaks::url_with_password(), &["-vv"]),
        Duration::from_secs(3),
    );
    let (_, stderr) = leaks::assert_no_password("worker, refused broker", &out);
    assert!(stderr.contains("broker not reachable"), "{stderr}");

    // A real broker refusing the login: the password went out in connection.start-ok, which
    // lapin traces frame by frame (RUST_LOG=trace is set).
    let out = leaks::run(
        leaks::command(BIN, &leaks::real_broker_url_with_wrong_password(), &["-vv"]),
        Duration::from_secs(3),
    );
    let (_, stderr) = leaks::assert_no_password("worker, login refused", &out);
    assert!(stderr.contains("ACCESS_REFUSED"), "{stderr}");

    let out = leaks::run(
        leaks::command(BIN, &leaks::unparsable_url_with_password(), &[]),
        Duration::from_secs(30),
    );
    let (_, stderr) = leaks::assert_no_password("worker, unparsable URL", &out);
    assert!(!out.status.success());
    assert!(stderr.contains("broker.url"), "{stderr}");
}
