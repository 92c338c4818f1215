//! The library and the binary against the real broker, as the users they create: a provisioned
//! participant connects with the password from the credentials file, checks its queue passively,
//! publishes a submission, reads its own queue and nobody else's; the binary's exit statuses.
//!
//! Needs RabbitMQ with the management plugin (AMQP at `$AMQP_URL`'s host, default 127.0.0.1:5672;
//! the API at `$BROKER_ADMIN_URL`, default http://127.0.0.1:15672, as `$BROKER_ADMIN_USER` /
//! `$BROKER_ADMIN_PASSWORD`, default guest/guest). Each test uses a vhost of its own and removes
//! it and its users.

use std::process::Command;

use admin::credentials::CredentialsFile;
use admin::{AdminCredentials, Provisioner, Study};
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use pipeline::{ParticipantId, Settings, Topology};

fn admin_credentials() -> AdminCredentials {
    let env = |name: &str, default: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_owned())
    };
    AdminCredentials {
        url: env("BROKER_ADMIN_URL", "http://127.0.0.1:15672"),
        user: env("BROKER_ADMIN_USER", "guest"),
        password: env("BROKER_ADMIN_PASSWORD", "guest"),
    }
}

fn study(vhost: &str) -> Study {
    let mut settings = Settings::defaults();
    if let Ok(url) = std::env::var("AMQP_URL") {
        settings.broker.url = url;
    }
    Study {
        vhost: vhost.to_owned(),
        topology: Topology::new(&settings.topology, &settings.reply_queues),
        broker: settings.broker,
    }
}

/// Removes the vhost and the users named `<tag>…` however the test ends.
struct Cleanup {
    tag: String,
    vhost: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let api = admin::ManagementApi::new(&admin_credentials());
        if let Ok(users) = api.users() {
            let mine: Vec<String> = users
                .into_keys()
                .filter(|u| u.starts_with(&self.tag))
                .collect();
            let _ = api.delete_users(&mine);
        }
        let _ = api.delete_vhost(&self.vhost);
    }
}

fn refused(err: &lapin::Error) -> bool {
    err.to_string().contains("ACCESS_REFUSED")
}

#[tokio::test]
async fn a_provisioned_participant_works_under_its_own_user_and_reaches_nothing_else() {
    let tag = format!("admrs{}", std::process::id());
    let vhost = format!("admin-rs-{tag}");
    let _cleanup = Cleanup {
        tag: tag.clone(),
        vhost: vhost.clone(),
    };
    let dir = tempfile::tempdir().unwrap();
    let p = Provisioner::new(admin_credentials(), study(&vhost)).unwrap();
    let summary = p.topology().await.unwrap();
    assert!(summary.vhost_created);
    let ids: Vec<ParticipantId> = (1..=3)
        .map(|n| ParticipantId::new(&format!("{tag}-{n}")).unwrap())
        .collect();
    let path = dir.path().join("c.csv");
    let mut file = CredentialsFile::open(&path, "participant").unwrap();
    let summary = p
        .participants("cohort", &ids, &mut file, false)
        .await
        .unwrap();
    assert_eq!(
        (
            summary.users_created,
            summary.queues_declared,
            summary.credentials_written
        ),
        (3, 3, 3)
    );

    let file = CredentialsFile::open(&path, "participant").unwrap();
    let me = &ids[0];
    let password = file.password_of(me.as_str()).unwrap();
    let conn = Connection::connect(
        &p.amqp_url(me.as_str(), password),
        ConnectionProperties::default(),
    )
    .await
    .unwrap();
    let mine = format!("results.{me}");
    let other = format!("results.{}", ids[1]);

    // What a least-privileged participant does: a passive check, a confirmed submission, a get.
    let ch = conn.create_channel().await.unwrap();
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    ch.queue_declare(mine.as_str().into(), passive, FieldTable::default())
        .await
        .unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let confirm = ch
        .basic_publish(
            "readings".into(),
            "submission".into(),
            BasicPublishOptions::default(),
            b"{}",
            BasicProperties::default().with_user_id(me.as_str().into()),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack());
    assert!(
        ch.basic_get(mine.as_str().into(), BasicGetOptions::default())
            .await
            .unwrap()
            .is_none()
    );

    // Another's queue, and declaring anything: refused.
    let ch = conn.create_channel().await.unwrap();
    let err = ch
        .basic_get(other.as_str().into(), BasicGetOptions::default())
        .await
        .unwrap_err();
    assert!(refused(&err), "get from another's queue: {err}");
    let ch = conn.create_channel().await.unwrap();
    let err = ch
        .queue_declare(
            format!("{tag}-own").as_str().into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert!(refused(&err), "declare: {err}");
    let _ = conn.close(200, "done".into()).await;
}

#[test]
fn the_binary_reports_missing_topology_and_refused_admins_by_exit_status() {
    let bin = env!("CARGO_BIN_EXE_admin");
    let help = Command::new(bin).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(help.status.success());
    for expected in [
        "participant",
        "coordinator",
        "cohort",
        "--credentials",
        "Exit status",
    ] {
        assert!(text.contains(expected), "--help lacks {expected:?}");
    }
    let admin = admin_credentials();
    assert!(
        !text.contains(&format!(":{}@", admin.password)),
        "a password in --help"
    );

    let missing = Command::new(bin)
        .args(["--vhost", "admin-rs-no-such-vhost", "show"])
        .output()
        .unwrap();
    assert_eq!(
        missing.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains("run `admin --vhost admin-rs-no-such-vhost topology` first")
    );

    let wrong = Command::new(bin)
        .args(["show"])
        .env("BROKER_ADMIN_PASSWORD", "certainly-not-the-password")
        .output()
        .unwrap();
    assert_eq!(
        wrong.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        stderr.contains("HTTP 401") && !stderr.contains("certainly-not-the-password"),
        "{stderr}"
    );

    let bad_id = Command::new(bin)
        .args(["participant", "a.b", "--credentials", "/nonexistent/x.csv"])
        .output()
        .unwrap();
    assert_eq!(bad_id.status.code(), Some(2));
}
