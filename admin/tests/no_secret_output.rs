//! The broker password never reaches admin's output (help, the error of an unparsable URL, an
//! unreachable management API), and an admin password file others may read is refused.

use std::time::Duration;

use test_support::leaks;

const BIN: &str = env!("CARGO_BIN_EXE_admin");
const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn help_does_not_show_the_password() {
    leaks::assert_help_hides_the_password(BIN, &["topology", "cohort"]);
}

#[test]
fn failures_do_not_show_the_password() {
    let refused_api = format!("http://127.0.0.1:{}", leaks::refused_port());
    for url in [
        leaks::url_with_password(),
        leaks::unparsable_url_with_password(),
    ] {
        let mut cmd = leaks::command(BIN, &url, &["--vhost", "leak-test", "show", "-vv"]);
        cmd.env("BROKER_ADMIN_URL", &refused_api)
            .env("BROKER_ADMIN_PASSWORD", leaks::PASSWORD);
        let out = leaks::run(cmd, LIMIT);
        leaks::assert_no_password(&format!("admin show with {}", url.len()), &out);
        assert!(!out.status.success());
    }
}

#[test]
fn an_admin_password_file_others_may_read_is_refused() {
    let file = leaks::password_file(0o644);
    let mut cmd = leaks::command(
        BIN,
        &leaks::url_with_password(),
        &["--vhost", "leak-test", "show"],
    );
    cmd.arg("--admin-password-file").arg(&file);
    let out = leaks::run(cmd, LIMIT);
    let (_, stderr) = leaks::assert_no_password("admin with a 0644 password file", &out);
    assert!(!out.status.success());
    assert!(stderr.contains("chmod 600"), "{stderr}");
    std::fs::remove_dir_all(file.parent().unwrap()).unwrap();
}
