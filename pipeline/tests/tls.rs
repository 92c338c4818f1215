//! TLS to the broker, against a real TLS listener of the local RabbitMQ: `scripts/tls-test-broker`
//! (run once per test binary) makes a throw-away test CA, a server certificate for 127.0.0.1 /
//! localhost and a client certificate (CN = guest), and starts a TLS listener on
//! 127.0.0.1:$TLS_TEST_PORT (default 5671) at runtime, without restarting the node.
//!
//! Everything goes through `pipeline::broker::connect`, the path every binary uses:
//! - a publish with confirm and its consumption over amqps:// (password login, then EXTERNAL
//!   with the client certificate);
//! - a broker certificate from another CA is refused, at once, with an error naming the setting;
//! - a plain AMQP client on the TLS port gets no AMQP session;
//! - a plain amqp:// URL to a host that is not loopback is refused before any network traffic.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection};
use pipeline::broker::{self, BrokerError, ConfirmedPublisher, Outgoing, Retry};
use pipeline::config::{BrokerSettings, Settings};

const WAIT: Duration = Duration::from_secs(10);

/// Where the test listener is and its certificates are.
struct Endpoint {
    dir: PathBuf,
    port: u16,
}

/// Runs `scripts/tls-test-broker` once for this test binary. A failure fails every test here (the
/// TLS tests are part of CI: they are not skipped when the endpoint cannot be set up).
fn endpoint() -> &'static Endpoint {
    static ENDPOINT: OnceLock<Result<Endpoint, String>> = OnceLock::new();
    let outcome = ENDPOINT.get_or_init(|| {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/tls-test-broker");
        let output = Command::new(&script)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(format!(
                "{} failed ({}): {}",
                script.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let value = |key: &str| {
            stdout
                .split_whitespace()
                .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_owned)
                .ok_or_else(|| format!("no {key}= in the script's output: {stdout:?}"))
        };
        Ok(Endpoint {
            dir: PathBuf::from(value("TLS_TEST_DIR")?),
            port: value("TLS_TEST_PORT")?
                .parse()
                .map_err(|e| format!("TLS_TEST_PORT: {e}"))?,
        })
    });
    match outcome {
        Ok(endpoint) => endpoint,
        Err(reason) => panic!("no TLS test endpoint: {reason}"),
    }
}

/// Broker settings for `url`, trusting the file `ca` of the test directory (if any).
fn broker_settings(url: String, ca: Option<&str>) -> BrokerSettings {
    let mut settings = Settings::defaults().broker;
    settings.url = url;
    settings.connect_attempts = 1;
    settings.connect_timeout = WAIT;
    settings.tls.ca_file = ca.map(|name| endpoint().dir.join(name));
    settings
}

fn tls_url(host: &str, query: &str) -> String {
    format!("amqps://guest:guest@{host}:{}/%2f{query}", endpoint().port)
}

/// Publishes one message with confirm on one connection and consumes it on another (both made by
/// `broker::connect` from `settings`), checking the body arrives unchanged.
async fn publish_and_consume(settings: &BrokerSettings) {
    let consuming = broker::connect(settings, "tls-test-consume", Retry::Bounded(1), false)
        .await
        .expect("consuming connection over TLS");
    let publishing = broker::connect(settings, "tls-test-publish", Retry::Bounded(1), false)
        .await
        .expect("publishing connection over TLS");

    let queue = format!("pipeline-tls-test.{}", uuid::Uuid::new_v4());
    let channel = consuming.create_channel().await.unwrap();
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions::exclusive(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    let body = b"reading over TLS".to_vec();
    let publisher = ConfirmedPublisher::new(&publishing).await.unwrap();
    publisher
        .publish(Outgoing {
            exchange: String::new(),
            routing_key: queue.clone(),
            body: body.clone(),
            properties: BasicProperties::default().with_message_id("tls-1".into()),
        })
        .await
        .expect("publish confirmed over TLS");

    let delivery = tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("a delivery within the wait")
        .expect("the consumer is open")
        .expect("a delivery, not an error");
    assert_eq!(delivery.data, body);
    delivery.ack(BasicAckOptions::default()).await.unwrap();
    close(&publishing).await;
    close(&consuming).await;
}

async fn close(conn: &Connection) {
    broker::close_connection(conn, "test done").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_publish_and_its_consumption_work_over_tls() {
    // 127.0.0.1: the server certificate's IP address name is checked.
    let settings = broker_settings(tls_url("127.0.0.1", ""), Some("ca.pem"));
    publish_and_consume(&settings).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_logs_in_with_external() {
    let mut settings = broker_settings(
        format!(
            "amqps://localhost:{}/%2f?auth_mechanism=external",
            endpoint().port
        ),
        Some("ca.pem"),
    );
    // Without the certificate, EXTERNAL has nothing to log in with: the broker refuses.
    let refused = broker::connect(&settings, "tls-test-no-cert", Retry::Bounded(1), false).await;
    assert!(
        refused.is_err(),
        "EXTERNAL without a client certificate was accepted"
    );
    settings.tls.client_cert = Some(endpoint().dir.join("client.pem"));
    settings.tls.client_key = Some(endpoint().dir.join("client.key"));
    publish_and_consume(&settings).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_certificate_from_another_ca_is_refused_at_once() {
    // Trusting only an unrelated CA (plus the system roots, which do not hold the test CA either),
    // and asking for several attempts: a certificate failure must not be retried.
    let mut settings = broker_settings(tls_url("localhost", ""), Some("other-ca.pem"));
    settings.connect_attempts = 3;
    settings.retry_delay = Duration::from_secs(2);
    let started = Instant::now();
    let err = broker::connect(&settings, "tls-test-other-ca", Retry::Bounded(3), false)
        .await
        .expect_err("a certificate from an untrusted CA was accepted");
    assert!(
        matches!(err, BrokerError::Certificate { .. }),
        "not a certificate error: {err}"
    );
    let message = err.to_string();
    assert!(message.contains("invalid peer certificate"), "{message}");
    assert!(message.contains("broker.tls.ca_file"), "{message}");
    assert!(!message.contains("guest:guest"), "password in {message}");
    assert!(started.elapsed() < Duration::from_secs(2), "retried");

    // The system roots alone do not trust the test CA either.
    let settings = broker_settings(tls_url("localhost", ""), None);
    let err = broker::connect(&settings, "tls-test-system-roots", Retry::Bounded(1), false)
        .await
        .expect_err("the test CA is trusted without broker.tls.ca_file");
    assert!(
        matches!(err, BrokerError::Certificate { .. }),
        "not a certificate error: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_amqp_client_on_the_tls_port_gets_no_session() {
    let mut settings = broker_settings(
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", endpoint().port),
        None,
    );
    settings.connect_timeout = Duration::from_secs(5);
    let err = broker::connect(&settings, "tls-test-plain", Retry::Bounded(1), false)
        .await
        .expect_err("a plain AMQP connection to the TLS port succeeded");
    assert!(
        matches!(err, BrokerError::Unreachable { .. }),
        "unexpected error: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_url_to_a_remote_host_is_refused_before_connecting() {
    // 192.0.2.1 (TEST-NET-1) answers nothing: a connection attempt would take the whole timeout.
    let settings = broker_settings("amqp://guest:secret@192.0.2.1:5672/%2f".into(), None);
    let started = Instant::now();
    let err = broker::connect(&settings, "tls-test-remote-plain", Retry::Bounded(1), false)
        .await
        .expect_err("plain AMQP to a remote host was allowed");
    assert!(matches!(err, BrokerError::Refused(_)), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("broker.allow_insecure_plaintext"),
        "{message}"
    );
    assert!(!message.contains("secret"), "password in {message}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "it tried to connect"
    );

    // The same through configuration loading, as the binaries do it at start.
    let err = Settings::load(&pipeline::config::LoadOptions {
        ignore_environment: true,
        overrides: vec![("broker.url".into(), settings.url.clone())],
        ..Default::default()
    })
    .expect_err("configuration with plain AMQP to a remote host loaded");
    assert!(
        err.to_string().contains("broker.allow_insecure_plaintext"),
        "{err}"
    );
}
