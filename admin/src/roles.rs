//! The roles and the exact permissions each gets on the study's vhost.
//!
//! RabbitMQ matches a permission regex against a resource name **unanchored**, and `.` matches
//! any character: `results\.p-1` would also grant `results.p-10`. Every regex built here is
//! therefore anchored (`^…$`) with its metacharacters escaped, and `^$` grants nothing.

use std::fmt;

use pipeline::participant::ParticipantIdError;
use pipeline::{ParticipantId, Topology};
use serde::Serialize;
use thiserror::Error;

/// The user tag that marks a user as provisioned for a role. RabbitMQ grants nothing for tags it
/// does not know; the tag only lets `admin show` and `admin remove` recognise a role, so that
/// `remove` can refuse to delete a user of another role (the operator's own, for instance).
pub const TAG_PREFIX: &str = "pipeline-";

/// Tags that give a user management rights: a user carrying one is never adopted or removed.
pub const PRIVILEGED_TAGS: [&str; 5] = [
    "administrator",
    "monitoring",
    "policymaker",
    "management",
    "impersonator",
];

/// The parties of a study, each with its own RabbitMQ user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Publishes its own submissions, reads its own reply queue.
    Participant,
    /// Consumes the work queue, publishes results and dead letters.
    Worker,
    /// Enrolls and collects for a cohort: publishes submissions, reads the cohort's reply queues.
    Coordinator,
}

impl Role {
    /// The tag `admin` gives users of this role.
    pub fn tag(self) -> &'static str {
        match self {
            Role::Participant => "pipeline-participant",
            Role::Worker => "pipeline-worker",
            Role::Coordinator => "pipeline-coordinator",
        }
    }

    /// The role a tag marks, if it is one of ours.
    pub fn from_tag(tag: &str) -> Option<Role> {
        [Role::Participant, Role::Worker, Role::Coordinator]
            .into_iter()
            .find(|role| role.tag() == tag)
    }

    /// The role's name on the command line and in output.
    pub fn name(self) -> &'static str {
        match self {
            Role::Participant => "participant",
            Role::Worker => "worker",
            Role::Coordinator => "coordinator",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One user's configure / write / read regexes on a vhost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Permissions {
    /// Names the user may declare (non-passively) or delete.
    pub configure: String,
    /// Exchanges the user may publish to (and queues it may bind).
    pub write: String,
    /// Queues the user may consume, get from or purge (and exchanges it may bind from).
    pub read: String,
}

/// The regex that grants nothing.
pub const NOTHING: &str = "^$";

/// `name`, with every regex metacharacter escaped.
pub fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if "\\^$.|?*+()[]{}/".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// An anchored regex matching exactly `name`.
pub fn exactly(name: &str) -> String {
    format!("^{}$", escape(name))
}

/// An anchored regex matching exactly one of `names`.
pub fn one_of(names: &[&str]) -> String {
    let alternatives: Vec<String> = names.iter().map(|n| escape(n)).collect();
    format!("^({})$", alternatives.join("|"))
}

impl Permissions {
    /// A participant: publishes to the readings exchange only, reads only its own reply queue,
    /// configures nothing. No write on the default exchange (`amq.default`): write is checked on
    /// the exchange alone, so it would let a participant publish into any queue by name.
    pub fn participant(topology: &Topology, id: &ParticipantId) -> Permissions {
        Permissions {
            configure: NOTHING.to_owned(),
            write: exactly(&topology.readings_exchange),
            read: exactly(&topology.reply_queue(id)),
        }
    }

    /// A worker: reads the work queue, writes results and dead letters (it dead-letters itself,
    /// with the reason in a header), configures nothing: configure would also allow deleting the
    /// work queue, the study's backlog.
    pub fn worker(topology: &Topology) -> Permissions {
        Permissions {
            configure: NOTHING.to_owned(),
            write: one_of(&[&topology.results_exchange, &topology.dead_exchange]),
            read: exactly(&topology.work_queue),
        }
    }

    /// A cohort's coordinator: publishes to the readings exchange (on the participants' behalf)
    /// and reads the reply queues `<reply prefix><cohort>-<n>` of its cohort's members, `n`
    /// decimal digits only. Because a [`Cohort`] name never ends in `-<digits>`, no queue name
    /// matches two cohorts' regexes (see [`Cohort`]).
    pub fn coordinator(topology: &Topology, cohort: &Cohort) -> Permissions {
        Permissions {
            configure: NOTHING.to_owned(),
            write: exactly(&topology.readings_exchange),
            read: format!(
                "^{}-[0-9]+$",
                escape(&format!(
                    "{}{}",
                    topology.reply_queue_prefix,
                    cohort.as_str()
                ))
            ),
        }
    }
}

/// Why a string is not a cohort name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CohortError {
    /// Not a valid participant id prefix.
    #[error("cohort name: {0}")]
    Syntax(#[from] ParticipantIdError),
    /// Ends in `-<digits>`, `-` or `_`.
    #[error(
        "cohort name {0:?} may not end in '-', '_' or '-<digits>' (its members are <cohort>-<n>, and such a name would overlap another cohort's members)"
    )]
    AmbiguousEnd(String),
    /// Too long to leave room for `-<n>` within a participant id.
    #[error(
        "cohort name {0:?} is too long: its members <cohort>-<n> must stay within 64 characters"
    )]
    TooLong(String),
}

/// Longest cohort name: leaves room for `-` and a number of up to 9 digits in a 64-byte id.
pub const MAX_COHORT_LEN: usize = 54;

/// A cohort: a group of participants whose ids are `<cohort>-<n>` (`n` decimal digits), enrolled
/// and collected by one coordinator.
///
/// The name is a participant id that does not end in `-<digits>`, `-` or `_`. That makes cohorts
/// disjoint: if `X-<n>` were a member of cohorts `A` and `B` with `A` shorter, then `B` would be
/// `A-<a prefix of n>`, a name ending in `-<digits>`, which is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cohort(String);

impl Cohort {
    /// Checks `name` and wraps it.
    pub fn new(name: &str) -> Result<Cohort, CohortError> {
        ParticipantId::new(name)?;
        if name.len() > MAX_COHORT_LEN {
            return Err(CohortError::TooLong(name.to_owned()));
        }
        let tail = name.rsplit_once('-').map(|(_, tail)| tail);
        let ends_in_number =
            tail.is_some_and(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()));
        if ends_in_number || name.ends_with('-') || name.ends_with('_') {
            return Err(CohortError::AmbiguousEnd(name.to_owned()));
        }
        Ok(Cohort(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Member `n`: `<cohort>-<n>`.
    pub fn member(&self, n: u64) -> ParticipantId {
        ParticipantId::new(&format!("{}-{n}", self.0)).expect(
            "a cohort name plus '-' and at most 20 digits is a valid id (checked in Cohort::new)",
        )
    }

    /// Whether `id` is `<cohort>-<digits>`, a member this cohort's coordinator can read for.
    pub fn contains(&self, id: &ParticipantId) -> bool {
        id.as_str()
            .strip_prefix(self.0.as_str())
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    }

    /// The coordinator's default user name, `<cohort>-coordinator` (never a member's id).
    pub fn coordinator_user(&self) -> String {
        format!("{}-coordinator", self.0)
    }
}

impl fmt::Display for Cohort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology() -> Topology {
        let s = pipeline::Settings::defaults();
        Topology::new(&s.topology, &s.reply_queues)
    }

    fn id(s: &str) -> ParticipantId {
        ParticipantId::new(s).unwrap()
    }

    #[test]
    fn regexes_are_anchored_and_escaped() {
        let t = topology();
        let p = Permissions::participant(&t, &id("p-1"));
        assert_eq!(
            p,
            Permissions {
                configure: "^$".into(),
                write: "^readings$".into(),
                read: "^results\\.p-1$".into(),
            }
        );
        let w = Permissions::worker(&t);
        assert_eq!(w.configure, "^$");
        assert_eq!(w.write, "^(results|readings\\.dead)$");
        assert_eq!(w.read, "^readings\\.work$");
        let c = Permissions::coordinator(&t, &Cohort::new("clinic").unwrap());
        assert_eq!(c.write, "^readings$");
        assert_eq!(c.read, "^results\\.clinic-[0-9]+$");
        assert_eq!(escape("a.b*c(d)"), "a\\.b\\*c\\(d\\)");
    }

    #[test]
    fn cohort_names_that_would_overlap_are_refused() {
        for bad in ["a-1", "a-", "a_", "x-12-3", "", "a.b", &"c".repeat(55)] {
            assert!(Cohort::new(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["a", "clinic-north", "c1", "a-1b", "2026-a"] {
            assert!(Cohort::new(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn membership_is_exactly_cohort_dash_digits() {
        let a = Cohort::new("a").unwrap();
        let ab = Cohort::new("a-b").unwrap();
        assert!(a.contains(&id("a-1")) && a.contains(&id("a-10")));
        assert!(!a.contains(&id("a-1b")) && !a.contains(&id("a-b-1")) && !a.contains(&id("ab-1")));
        assert!(!a.contains(&id("a-")) && !a.contains(&id("a")));
        assert!(ab.contains(&id("a-b-7")) && !ab.contains(&id("a-7")));
        assert_eq!(a.member(42).as_str(), "a-42");
        assert!(!a.contains(&id(&a.coordinator_user())));
    }
}
