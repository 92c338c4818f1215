//! The broker password never reaches the consumer's output: not in `--help` (clap would show
//! `AMQP_URL`'s value), not in the error of an unreachable broker or an unparsable URL, not in
//! a trace-level log.

use std::time::Duration;

use participant::keystore::KeyStore;
use pipeline::ParticipantId;
use test_support::leaks;

const BIN: &str = env!("CARGO_BIN_EXE_consumer");
const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn help_does_not_show_the_password() {
    leaks::assert_help_hides_the_password(BIN, &["collect"]);
}

#[test]
fn failures_and_logs_do_not_show_the_password() {
    let root = std::env::temp_dir().join(format!("consumer-leak-{}", uuid::Uuid::new_v4()));
    let keys = root.join("keys");
    KeyStore::new(&keys)
        .save(
            &ParticipantId::new("p-leak").unwrap(),
            test_support::shared_key(),
        )
        .unwrap();
    let show = ["--participant", "p-leak", "--timeout", "1s", "-vv"];
    let out_file = root.join("out.csv");
    let collect = ["collect", "--out", out_file.to_str().unwrap(), "-vv"];

    for args in [&show[..], &collect[..]] {
        let what = format!("consumer {}", args.join(" "));
        let mut cmd = leaks::command(BIN, &leaks::url_with_password(), args);
        cmd.env("KEY_STORE", &keys);
        let out = leaks::run(cmd, LIMIT);
        let (_, stderr) = leaks::assert_no_password(&what, &out);
        assert!(!out.status.success(), "{what}: succeeded");
        assert!(
            stderr.contains("cannot connect to the broker at amqp://leak:***@"),
            "{what}: {stderr}"
        );

        let mut cmd = leaks::command(BIN, &leaks::unparsable_url_with_password(), args);
        cmd.env("KEY_STORE", &keys);
        let out = leaks::run(cmd, LIMIT);
        let (_, stderr) = leaks::assert_no_password(&format!("{what}, unparsable URL"), &out);
        assert!(stderr.contains("broker.url"), "{what}: {stderr}");
    }
    std::fs::remove_dir_all(&root).unwrap();
}
