//! A small client of RabbitMQ's management HTTP API: the calls provisioning needs, over one
//! keep-alive agent, with typed errors.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tracing::debug;

use crate::roles::Permissions;

/// Where the management API is and who the admin is.
#[derive(Clone)]
pub struct AdminCredentials {
    /// Base URL, e.g. `http://127.0.0.1:15672`.
    pub url: String,
    /// An administrator.
    pub user: String,
    /// Its password (never logged; not shown by `Debug`).
    pub password: String,
}

impl std::fmt::Debug for AdminCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminCredentials")
            .field("url", &self.url)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// What went wrong talking to the management API.
#[derive(Debug, Error)]
pub enum ApiError {
    /// No HTTP answer (connection refused, DNS, TLS, timeout).
    #[error("cannot reach the management API at {url}: {source}")]
    Unreachable {
        /// Base URL.
        url: String,
        /// The transport error.
        #[source]
        source: Box<ureq::Error>,
    },
    /// 401: wrong admin user or password, or the user lacks a management tag.
    #[error(
        "the management API refused user {user:?} (HTTP 401 {reason}): check BROKER_ADMIN_USER and the admin password; the user needs the administrator tag"
    )]
    Unauthorized {
        /// Admin user name.
        user: String,
        /// The broker's reason.
        reason: String,
    },
    /// 403: authenticated, but not allowed to do this.
    #[error(
        "{method} {path}: forbidden for user {user:?} (HTTP 403 {reason}); the admin needs the administrator tag"
    )]
    Forbidden {
        /// HTTP method.
        method: &'static str,
        /// API path.
        path: String,
        /// Admin user name.
        user: String,
        /// The broker's reason.
        reason: String,
    },
    /// 404 where the object had to exist.
    #[error("{method} {path}: not found (HTTP 404)")]
    NotFound {
        /// HTTP method.
        method: &'static str,
        /// API path.
        path: String,
    },
    /// Any other non-success status.
    #[error("{method} {path}: HTTP {status}: {reason}")]
    Status {
        /// HTTP method.
        method: &'static str,
        /// API path.
        path: String,
        /// Status code.
        status: u16,
        /// The broker's reason (its JSON `reason`, or the body).
        reason: String,
    },
    /// The answer was not the JSON expected.
    #[error("{path}: unexpected answer from the management API: {reason}")]
    Decode {
        /// API path.
        path: String,
        /// What did not parse.
        reason: String,
    },
}

/// A user as the API lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct UserInfo {
    /// User name.
    pub name: String,
    /// Tags (3.10 answers a list; older versions a comma-separated string).
    #[serde(deserialize_with = "tags")]
    pub tags: Vec<String>,
}

fn tags<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Tags {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Tags::deserialize(d)? {
        Tags::List(list) => list,
        Tags::Text(text) => text
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// A user's permissions on one vhost, as the API lists them.
#[derive(Debug, Clone, Deserialize)]
pub struct PermissionInfo {
    /// User name.
    pub user: String,
    /// Configure regex.
    pub configure: String,
    /// Write regex.
    pub write: String,
    /// Read regex.
    pub read: String,
}

impl PermissionInfo {
    /// The three regexes.
    pub fn permissions(&self) -> Permissions {
        Permissions {
            configure: self.configure.clone(),
            write: self.write.clone(),
            read: self.read.clone(),
        }
    }
}

/// A new user for [`ManagementApi::import`]: the broker hashes the password.
#[derive(Debug, Clone, Serialize)]
pub struct NewUser {
    /// User name.
    pub name: String,
    /// Clear-text password (sent once, over the admin's connection).
    pub password: String,
    /// Comma-separated tags.
    pub tags: String,
}

/// A permission entry for [`ManagementApi::import`].
#[derive(Debug, Clone, Serialize)]
pub struct PermissionEntry {
    /// User name.
    pub user: String,
    /// Vhost.
    pub vhost: String,
    /// The regexes.
    #[serde(flatten)]
    pub permissions: Permissions,
}

/// Users and permissions imported in one request.
#[derive(Debug, Default, Serialize)]
struct Definitions<'a> {
    users: &'a [NewUser],
    permissions: &'a [PermissionEntry],
}

/// A management API client: one agent, so every call reuses the same keep-alive connection.
pub struct ManagementApi {
    agent: ureq::Agent,
    base: String,
    user: String,
    authorization: String,
}

/// Percent-encodes one path segment (the default vhost `/` becomes `%2F`).
pub fn segment(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// Largest answer read (a user list of a large broker is a few MB).
const MAX_BODY: u64 = 256 * 1024 * 1024;

impl ManagementApi {
    /// A client for `credentials`; no request is made yet.
    pub fn new(credentials: &AdminCredentials) -> ManagementApi {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            // Statuses are answers to interpret here, not transport errors.
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .timeout_connect(Some(Duration::from_secs(10)))
            .build()
            .into();
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", credentials.user, credentials.password));
        ManagementApi {
            agent,
            base: credentials.url.trim_end_matches('/').to_owned(),
            user: credentials.user.clone(),
            authorization: format!("Basic {token}"),
        }
    }

    /// The admin's user name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Sends one request; `Ok(None)` for a 404, the body otherwise.
    fn request(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Option<String>, ApiError> {
        let url = format!("{}/api/{path}", self.base);
        debug!(method, path, "management API");
        let unreachable = |source: ureq::Error| ApiError::Unreachable {
            url: self.base.clone(),
            source: Box::new(source),
        };
        let auth = self.authorization.as_str();
        let result = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("authorization", auth).call(),
            ("DELETE", _) => self.agent.delete(&url).header("authorization", auth).call(),
            ("PUT", Some(b)) => self
                .agent
                .put(&url)
                .header("authorization", auth)
                .send_json(b),
            ("POST", Some(b)) => self
                .agent
                .post(&url)
                .header("authorization", auth)
                .send_json(b),
            ("PUT", None) => self
                .agent
                .put(&url)
                .header("authorization", auth)
                .send_empty(),
            _ => self
                .agent
                .post(&url)
                .header("authorization", auth)
                .send_empty(),
        };
        let mut response = result.map_err(unreachable)?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_string()
            .map_err(unreachable)?;
        let reason = || {
            serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("reason").and_then(|r| r.as_str()).map(str::to_owned))
                .unwrap_or_else(|| text.chars().take(300).collect())
        };
        match status {
            200..=299 => Ok(Some(text)),
            404 => Ok(None),
            401 => Err(ApiError::Unauthorized {
                user: self.user.clone(),
                reason: reason(),
            }),
            403 => Err(ApiError::Forbidden {
                method,
                path: path.to_owned(),
                user: self.user.clone(),
                reason: reason(),
            }),
            _ => Err(ApiError::Status {
                method,
                path: path.to_owned(),
                status,
                reason: reason(),
            }),
        }
    }

    fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, ApiError> {
        match self.request("GET", path, None)? {
            None => Ok(None),
            Some(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|err| ApiError::Decode {
                    path: path.to_owned(),
                    reason: err.to_string(),
                }),
        }
    }

    fn required<T>(&self, method: &'static str, path: &str, v: Option<T>) -> Result<T, ApiError> {
        v.ok_or_else(|| ApiError::NotFound {
            method,
            path: path.to_owned(),
        })
    }

    /// Checks that the API answers and accepts the admin (`GET /api/whoami`).
    pub fn check_admin(&self) -> Result<(), ApiError> {
        let v: Option<serde_json::Value> = self.get_json("whoami")?;
        self.required("GET", "whoami", v).map(|_| ())
    }

    /// Whether `vhost` exists.
    pub fn vhost_exists(&self, vhost: &str) -> Result<bool, ApiError> {
        Ok(self
            .request("GET", &format!("vhosts/{}", segment(vhost)), None)?
            .is_some())
    }

    /// Creates `vhost` (idempotent).
    pub fn create_vhost(&self, vhost: &str) -> Result<(), ApiError> {
        let path = format!("vhosts/{}", segment(vhost));
        let v = self.request("PUT", &path, Some(&serde_json::json!({})))?;
        self.required("PUT", &path, v).map(|_| ())
    }

    /// Deletes `vhost` with everything in it; `false` when it did not exist.
    pub fn delete_vhost(&self, vhost: &str) -> Result<bool, ApiError> {
        Ok(self
            .request("DELETE", &format!("vhosts/{}", segment(vhost)), None)?
            .is_some())
    }

    /// Whether exchange `name` exists on `vhost`.
    pub fn exchange_exists(&self, vhost: &str, name: &str) -> Result<bool, ApiError> {
        let path = format!("exchanges/{}/{}", segment(vhost), segment(name));
        Ok(self.request("GET", &path, None)?.is_some())
    }

    /// Whether queue `name` exists on `vhost`.
    pub fn queue_exists(&self, vhost: &str, name: &str) -> Result<bool, ApiError> {
        let path = format!("queues/{}/{}", segment(vhost), segment(name));
        Ok(self.request("GET", &path, None)?.is_some())
    }

    /// Names of the queues of `vhost`, in one request.
    pub fn queue_names(&self, vhost: &str) -> Result<Vec<String>, ApiError> {
        #[derive(Deserialize)]
        struct Name {
            name: String,
        }
        let path = format!("queues/{}?columns=name", segment(vhost));
        let v: Option<Vec<Name>> = self.get_json(&path)?;
        Ok(self
            .required("GET", &path, v)?
            .into_iter()
            .map(|q| q.name)
            .collect())
    }

    /// `(queue, routing key)` of every binding from exchange `name` to a queue, in one request.
    pub fn bindings_from(
        &self,
        vhost: &str,
        name: &str,
    ) -> Result<Vec<(String, String)>, ApiError> {
        #[derive(Deserialize)]
        struct Binding {
            destination: String,
            destination_type: String,
            routing_key: String,
        }
        let path = format!(
            "exchanges/{}/{}/bindings/source",
            segment(vhost),
            segment(name)
        );
        let v: Option<Vec<Binding>> = self.get_json(&path)?;
        Ok(self
            .required("GET", &path, v)?
            .into_iter()
            .filter(|b| b.destination_type == "queue")
            .map(|b| (b.destination, b.routing_key))
            .collect())
    }

    /// Deletes queue `name` (with its messages); `false` when it did not exist.
    pub fn delete_queue(&self, vhost: &str, name: &str) -> Result<bool, ApiError> {
        let path = format!("queues/{}/{}", segment(vhost), segment(name));
        Ok(self.request("DELETE", &path, None)?.is_some())
    }

    /// Every user of the broker with its tags, in one request.
    pub fn users(&self) -> Result<BTreeMap<String, UserInfo>, ApiError> {
        let path = "users?columns=name,tags";
        let v: Option<Vec<UserInfo>> = self.get_json(path)?;
        Ok(self
            .required("GET", path, v)?
            .into_iter()
            .map(|u| (u.name.clone(), u))
            .collect())
    }

    /// Deletes `user` (the broker closes its connections); `false` when it did not exist.
    pub fn delete_user(&self, user: &str) -> Result<bool, ApiError> {
        Ok(self
            .request("DELETE", &format!("users/{}", segment(user)), None)?
            .is_some())
    }

    /// Deletes several users in one request (unknown names are ignored by the broker).
    pub fn delete_users(&self, users: &[String]) -> Result<(), ApiError> {
        if users.is_empty() {
            return Ok(());
        }
        let path = "users/bulk-delete";
        let v = self.request("POST", path, Some(&serde_json::json!({ "users": users })))?;
        self.required("POST", path, v).map(|_| ())
    }

    /// Every user's permissions on `vhost`, in one request.
    pub fn permissions(&self, vhost: &str) -> Result<BTreeMap<String, PermissionInfo>, ApiError> {
        let path = format!("vhosts/{}/permissions", segment(vhost));
        let v: Option<Vec<PermissionInfo>> = self.get_json(&path)?;
        Ok(self
            .required("GET", &path, v)?
            .into_iter()
            .map(|p| (p.user.clone(), p))
            .collect())
    }

    /// `(user, vhost)` of every permission on the broker, in one request.
    pub fn all_permissions(&self) -> Result<Vec<(String, String)>, ApiError> {
        #[derive(Deserialize)]
        struct Entry {
            user: String,
            vhost: String,
        }
        let path = "permissions?columns=user,vhost";
        let v: Option<Vec<Entry>> = self.get_json(path)?;
        Ok(self
            .required("GET", path, v)?
            .into_iter()
            .map(|e| (e.user, e.vhost))
            .collect())
    }

    /// Removes `user`'s permissions on `vhost`; `false` when it had none.
    pub fn clear_permissions(&self, vhost: &str, user: &str) -> Result<bool, ApiError> {
        let path = format!("permissions/{}/{}", segment(vhost), segment(user));
        Ok(self.request("DELETE", &path, None)?.is_some())
    }

    /// Sets `user`'s permissions on `vhost`.
    pub fn set_permissions(
        &self,
        vhost: &str,
        user: &str,
        permissions: &Permissions,
    ) -> Result<(), ApiError> {
        let path = format!("permissions/{}/{}", segment(vhost), segment(user));
        let body = serde_json::to_value(permissions).map_err(|err| ApiError::Decode {
            path: path.clone(),
            reason: err.to_string(),
        })?;
        let v = self.request("PUT", &path, Some(&body))?;
        self.required("PUT", &path, v).map(|_| ())
    }

    /// Creates users and sets permissions in one request (`POST /api/definitions`): what makes a
    /// cohort of thousands one round trip instead of two per participant. Only new users may be
    /// listed: an existing one would get the password given here.
    pub fn import(
        &self,
        users: &[NewUser],
        permissions: &[PermissionEntry],
    ) -> Result<(), ApiError> {
        if users.is_empty() && permissions.is_empty() {
            return Ok(());
        }
        let path = "definitions";
        let body = serde_json::to_value(Definitions { users, permissions }).map_err(|err| {
            ApiError::Decode {
                path: path.to_owned(),
                reason: err.to_string(),
            }
        })?;
        let v = self.request("POST", path, Some(&body))?;
        self.required("POST", path, v).map(|_| ())
    }
}
