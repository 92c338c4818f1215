//! Checks that a binary never prints the broker password: not in `--help` (clap shows
//! environment values unless told not to), not in an error, not in a log line at any level.
//! Each binary's crate runs its own commands through these.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The password the tests give; a line that contains it is a leak.
pub const PASSWORD: &str = "Leak-7f3a9c-pw";

/// A loopback port where nothing listens (bound, then released): connecting is refused at once.
pub fn refused_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("its address").port()
}

/// `amqp://leak:PASSWORD@127.0.0.1:<refused port>/%2f`.
pub fn url_with_password() -> String {
    format!("amqp://leak:{PASSWORD}@127.0.0.1:{}/%2f", refused_port())
}

/// The test broker's URL (`AMQP_URL`, else the default configuration's) with user `guest` and
/// [`PASSWORD`]: the broker refuses the login, after the client sent the password.
pub fn real_broker_url_with_wrong_password() -> String {
    let settings = crate::settings(&[]);
    let uri = pipeline::config::parse_amqp_uri(&settings.broker.url).expect("the test broker URL");
    format!(
        "{}://guest:{PASSWORD}@{}:{}/%2f",
        uri.scheme, uri.authority.host, uri.authority.port
    )
}

/// A URL amq-protocol-uri cannot parse and quotes whole in its error (no `//`).
pub fn unparsable_url_with_password() -> String {
    format!("amqp:leak:{PASSWORD}@127.0.0.1:{}", refused_port())
}

/// A file holding [`PASSWORD`] with `mode`, in a new directory under the system's temp dir.
pub fn password_file(mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!("leak-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("amqp-password");
    std::fs::write(&file, format!("{PASSWORD}\n")).expect("write the password file");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).expect("chmod");
    file
}

/// `bin` with `args`, the broker URL in `AMQP_URL`, everything logged (`RUST_LOG=trace`, which
/// would include lapin's frames), no other configuration from the caller's environment.
pub fn command(bin: &str, url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env("AMQP_URL", url)
        .env("RUST_LOG", "trace")
        .env_remove("AMQP_PASSWORD_FILE")
        .env("PIPELINE__BROKER__CONNECT_ATTEMPTS", "2")
        .env("PIPELINE__BROKER__RETRY_DELAY", "10ms")
        .stdin(Stdio::null());
    cmd
}

/// Runs `cmd` to its end, or kills it after `limit` (a worker retries for ever), and returns
/// what it printed.
pub fn run(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary");
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("collect the output")
}

/// Fails when stdout or stderr of `output` holds [`PASSWORD`] (also percent-encoded), naming
/// `what` was run; returns stdout and stderr as text.
pub fn assert_no_password(what: &str, output: &Output) -> (String, String) {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    // lapin's trace of the login frame shows the SASL response as a list of byte values.
    let as_bytes = PASSWORD
        .bytes()
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    for (stream, text) in [("stdout", &stdout), ("stderr", &stderr)] {
        assert!(
            !text.contains(PASSWORD) && !text.contains("7f3a9c") && !text.contains(&as_bytes),
            "{what}: the password is in {stream}:\n{text}"
        );
    }
    (stdout, stderr)
}

/// Runs `bin --help` (and `bin SUB --help` for each of `subcommands`) with the password in
/// `AMQP_URL`, and asserts it is printed nowhere, while the help does mention `AMQP_URL`.
pub fn assert_help_hides_the_password(bin: &str, subcommands: &[&str]) {
    let url = url_with_password();
    let mut runs: Vec<Vec<&str>> = vec![vec!["--help"]];
    runs.extend(subcommands.iter().map(|s| vec![*s, "--help"]));
    for args in runs {
        let out = run(command(bin, &url, &args), Duration::from_secs(30));
        let what = format!("{} {}", name(bin), args.join(" "));
        let (stdout, _) = assert_no_password(&what, &out);
        assert!(out.status.success(), "{what} failed");
        assert!(
            stdout.contains("AMQP_URL"),
            "{what}: AMQP_URL undocumented:\n{stdout}"
        );
    }
}

fn name(bin: &str) -> String {
    Path::new(bin)
        .file_name()
        .map_or_else(|| bin.to_owned(), |n| n.to_string_lossy().into_owned())
}
