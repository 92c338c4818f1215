//! # admin
//!
//! The operator's tool: provisions a study on a RabbitMQ broker so that every party connects as
//! its own user with the least it needs. Through the management HTTP API (users, permissions,
//! bulk imports) and AMQP as the admin (exchanges and queues, declared by the same
//! [`pipeline::Topology`] code the binaries use, so the arguments cannot drift apart).
//!
//! ## Roles
//!
//! | role | user | configure | write (exchanges) | read (queues) |
//! |------|------|-----------|-------------------|---------------|
//! | operator / admin | e.g. `guest` (administrator tag) | everything | everything | everything |
//! | worker | any name | nothing (`^$`) | `^(results\|readings\.dead)$` | `^readings\.work$` |
//! | participant `ID` | `ID` | nothing | `^readings$` | `^results\.ID$` |
//! | coordinator of cohort `C` | `C-coordinator` | nothing | `^readings$` | `^results\.C-[0-9]+$` |
//!
//! - A **participant** publishes its submissions and reads its own reply queue, nothing else: not
//!   another's queue (its regex is anchored: `results\.p-1` unanchored would also match
//!   `results.p-10`), not the work or dead-letter queue, not `results` or the default exchange
//!   (write on `amq.default` would let it publish into any queue by name).
//! - A **worker** consumes the work queue, publishes results and dead letters. No configure
//!   right: configure also allows deleting the work queue, the study's backlog.
//! - A **coordinator** enrolls and collects for a cohort whose members are `C-<n>`: it publishes
//!   submissions and reads its members' reply queues only. A cohort name may not end in
//!   `-<digits>`, so no queue matches two cohorts' regexes (see [`roles::Cohort`]). The worker
//!   accepts a coordinator's submissions for its members only when its configuration lists it
//!   as the cohort's delegate (`identity.delegates`), and never for anyone else; RabbitMQ's
//!   `impersonator` tag is never used.
//! - The **operator** (an administrator) runs this tool and nothing else.
//!
//! Users get a tag naming their role (`pipeline-participant`, ...). RabbitMQ grants nothing for
//! it; it lets `show` print the role and `remove` refuse to delete a user of another role or one
//! with management rights.
//!
//! ## Commands (binary `admin`)
//!
//! - `admin topology`: the vhost if missing (the admin gets full rights on it), then the shared
//!   exchanges, queues and bindings.
//! - `admin participant ID --credentials FILE`: reply queue `results.ID` bound to `results`, user
//!   `ID`.
//! - `admin cohort --prefix C --count N --credentials FILE` (members `C-1` … `C-N`), or
//!   `admin cohort --csv FILE --credentials FILE` (ids from the CSV's `participant` column):
//!   the same for many participants in one step.
//! - `admin worker USER --credentials FILE`, `admin coordinator C --credentials FILE`.
//! - `admin remove participant|cohort|worker|coordinator …` (`--delete-queue`: reply queues
//!   too). User names are broker-wide: a user that has permissions on another vhost only loses
//!   those on this one.
//! - `admin show`: users, roles and permissions of the vhost.
//!
//! Every command is idempotent: it reads what exists (a few list requests) and creates only
//! what is missing; an existing user keeps its password unless `--reset-password`. A run that
//! was interrupted continues where it stopped (see [`credentials`]).
//!
//! ## Credentials
//!
//! Passwords come from the operating system's CSPRNG and are written once to the credentials
//! file (CSV `participant,password,amqp_url`, mode 0600, created only when something is written,
//! never overwritten, appended to by resumed runs), before the users exist. They appear nowhere
//! else: not in logs, not on a command line. The admin's own password comes from
//! `$BROKER_ADMIN_PASSWORD` or `--admin-password-file`.
//!
//! ## Speed
//!
//! One keep-alive HTTP connection; users and permissions of a whole cohort go in one
//! definitions import (`POST /api/definitions`) per [`provision::IMPORT_CHUNK`] users; reply
//! queues are declared over one AMQP channel; what exists is read with one list request per kind.

pub mod api;
pub mod credentials;
pub mod provision;
pub mod roles;

use std::path::Path;

use pipeline::ParticipantId;

pub use api::{AdminCredentials, ApiError, ManagementApi};
pub use credentials::{CredentialsError, CredentialsFile};
pub use provision::{ProvisionError, Provisioner, Study, Summary};
pub use roles::{Cohort, Permissions, Role};

/// Participant ids from a CSV file: the `participant` column when the header has one (the
/// shape of `producer enroll`'s cohort file), else the first column; each id once, in the
/// order of first appearance.
pub fn participants_from_csv(path: &Path) -> Result<Vec<ParticipantId>, ProvisionError> {
    let input = |reason: String| ProvisionError::Input(format!("{}: {reason}", path.display()));
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|err| input(err.to_string()))?;
    let column = reader
        .headers()
        .map_err(|err| input(err.to_string()))?
        .iter()
        .position(|h| h == "participant")
        .unwrap_or(0);
    let mut seen = std::collections::HashSet::new();
    let mut ids = Vec::new();
    for (line, row) in reader.records().enumerate() {
        let row = row.map_err(|err| input(err.to_string()))?;
        let cell = row.get(column).unwrap_or("");
        let id =
            ParticipantId::new(cell).map_err(|err| input(format!("line {}: {err}", line + 2)))?;
        if seen.insert(id.clone()) {
            ids.push(id);
        }
    }
    if ids.is_empty() {
        return Err(input("no participant in the file".into()));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_ids_come_from_the_participant_column_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cohort.csv");
        std::fs::write(
            &path,
            "glucose,participant,cholesterol\n5.1,p-1,4\n5.3,p-1,4\n6,p-2,5\n",
        )
        .unwrap();
        let ids = participants_from_csv(&path).unwrap();
        assert_eq!(
            ids.iter().map(|i| i.as_str()).collect::<Vec<_>>(),
            ["p-1", "p-2"]
        );
        std::fs::write(&path, "participant\np.1\n").unwrap();
        let err = participants_from_csv(&path).unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}
