//! The broker password never reaches bench-broker's output (help, the error of an unreachable
//! broker or an unparsable URL).

use std::time::Duration;

use test_support::leaks;

const BIN: &str = env!("CARGO_BIN_EXE_bench-broker");

#[test]
fn help_and_failures_do_not_show_the_password() {
    for args in [&["--help"][..], &["delete", "--help"]] {
        let out = leaks::run(
            leaks::command(BIN, &leaks::url_with_password(), args),
            Duration::from_secs(30),
        );
        leaks::assert_no_password(&format!("bench-broker {}", args.join(" ")), &out);
        assert!(out.status.success());
    }
    let delete = ["delete", "--queue", "leak-test-nothing"];
    let out = leaks::run(
        leaks::command(BIN, &leaks::url_with_password(), &delete),
        Duration::from_secs(60),
    );
    let (_, stderr) = leaks::assert_no_password("bench-broker delete, refused broker", &out);
    assert!(!out.status.success());
    assert!(stderr.contains("amqp://leak:***@"), "{stderr}");
    let out = leaks::run(
        leaks::command(BIN, &leaks::unparsable_url_with_password(), &delete),
        Duration::from_secs(60),
    );
    let (_, stderr) = leaks::assert_no_password("bench-broker delete, unparsable URL", &out);
    assert!(stderr.contains("broker.url"), "{stderr}");
}
