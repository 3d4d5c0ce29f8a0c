//! Palaver's configuration: one struct, loaded once from `config/default.toml` (embedded in the binary), an optional
//! file named by `PALAVER_CONFIG`, and `PALAVER_*` environment variables, in that order of precedence (last wins).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The defaults, embedded so the binary runs from any directory.
const DEFAULTS: &str = include_str!("../../config/default.toml");

/// The shortest JWT secret accepted, in bytes (HS256's key should be at least as long as its 32-byte output).
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// The largest message size that may be configured (1 MiB).
pub const MAX_MESSAGE_BYTES_LIMIT: usize = 1 << 20;

/// The largest `max_header_bytes` that may be configured (256 KiB; hyper's own read buffer, about 400 KiB, would
/// cut a larger head off anyway).
pub const MAX_HEADER_BYTES_LIMIT: usize = 256 * 1024;

/// The largest `max_headers` that may be configured (room for that many is reserved for every request).
pub const MAX_HEADERS_LIMIT: usize = 10_000;

/// Dev mode is forgiving (a generated JWT secret); production mode refuses weak settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Dev,
    Production,
}

/// Every setting; see `config/default.toml` for what each one does.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub env: Mode,
    pub listen: SocketAddr,
    pub database_url: String,
    pub sqlite_path: PathBuf,
    pub nats_url: String,
    pub node_id: String,
    pub cluster_name: String,
    pub cluster_gap_hold_ms: u64,
    pub cluster_position_check_ms: u64,
    pub cluster_heartbeat_ms: u64,
    pub cluster_dead_after_ms: u64,
    pub db_pool_size: usize,
    pub db_timeout_ms: u64,
    pub jwt_secret: String,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub token_ttl_secs: u64,
    pub bcrypt_cost: u32,
    pub bcrypt_concurrency: usize,
    pub cookie_secure: bool,
    pub max_body_bytes: u64,
    pub max_message_bytes: usize,
    pub rooms_per_user: u64,
    pub allowed_origins: Vec<String>,
    pub ping_interval_secs: u64,
    pub pong_timeout_secs: u64,
    pub outbound_queue_frames: usize,
    pub ws_ticket_ttl_secs: u64,
    pub ws_message_limit: u32,
    pub ws_message_window_ms: u64,
    pub ws_flood_refusals: u32,
    pub max_replay: u32,
    pub edit_window_secs: u64,
    pub max_reactions_per_message: usize,
    pub metrics_token: String,
    pub http_requests_per_minute: u32,
    pub registrations_per_hour: u32,
    pub login_failure_limit: u32,
    pub login_ip_failure_limit: u32,
    pub login_failure_window_secs: u64,
    pub room_password_attempts: u32,
    pub room_password_window_secs: u64,
    pub ws_connections_per_user: u32,
    pub ws_connections_per_ip: u32,
    pub trusted_proxies: Vec<std::net::IpAddr>,
    pub group_commit_max_batch: usize,
    pub group_commit_linger_us: u64,
    pub group_commit_queue: usize,
    pub header_timeout_ms: u64,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub shutdown_grace_ms: u64,
    pub log: String,
    pub log_format: String,
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration could not be read: {0}")]
    Load(#[from] config::ConfigError),
    #[error("invalid setting {key} (PALAVER_{}): {reason}", key.to_uppercase())]
    Invalid { key: &'static str, reason: String },
}

impl Settings {
    /// Loads the defaults, then `PALAVER_CONFIG`'s file if set, then `PALAVER_*` variables from the process
    /// environment, and checks the result.
    pub fn load() -> Result<Settings, ConfigError> {
        Self::load_from(std::env::vars())
    }

    /// Like [`Settings::load`] with the given environment, so tests need not touch the process's.
    pub fn load_from(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let vars: std::collections::HashMap<String, String> = vars.into_iter().collect();
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(path) = vars.get("PALAVER_CONFIG").filter(|path| !path.is_empty()) {
            builder = builder.add_source(config::File::with_name(path).required(true));
        }
        let env = config::Environment::with_prefix("PALAVER")
            .prefix_separator("_")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("allowed_origins")
            .with_list_parse_key("trusted_proxies")
            .source(Some(
                vars.into_iter()
                    .filter(|(key, _)| key != "PALAVER_CONFIG")
                    .collect(),
            ));
        let settings: Settings = builder.add_source(env).build()?.try_deserialize()?;
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.max_message_bytes == 0 || self.max_message_bytes > MAX_MESSAGE_BYTES_LIMIT {
            return Err(ConfigError::Invalid {
                key: "max_message_bytes",
                reason: format!("must be between 1 and {MAX_MESSAGE_BYTES_LIMIT}"),
            });
        }
        if !(4..=31).contains(&self.bcrypt_cost) {
            return Err(ConfigError::Invalid {
                key: "bcrypt_cost",
                reason: "must be between 4 and 31".into(),
            });
        }
        let counts: [(&'static str, u64); 23] = [
            ("cluster_gap_hold_ms", self.cluster_gap_hold_ms),
            ("cluster_position_check_ms", self.cluster_position_check_ms),
            ("cluster_heartbeat_ms", self.cluster_heartbeat_ms),
            ("cluster_dead_after_ms", self.cluster_dead_after_ms),
            ("db_pool_size", self.db_pool_size as u64),
            ("token_ttl_secs", self.token_ttl_secs),
            ("ping_interval_secs", self.ping_interval_secs),
            ("ws_message_limit", u64::from(self.ws_message_limit)),
            ("ws_message_window_ms", self.ws_message_window_ms),
            ("ws_flood_refusals", u64::from(self.ws_flood_refusals)),
            (
                "http_requests_per_minute",
                u64::from(self.http_requests_per_minute),
            ),
            (
                "registrations_per_hour",
                u64::from(self.registrations_per_hour),
            ),
            ("login_failure_limit", u64::from(self.login_failure_limit)),
            (
                "login_ip_failure_limit",
                u64::from(self.login_ip_failure_limit),
            ),
            ("login_failure_window_secs", self.login_failure_window_secs),
            (
                "room_password_attempts",
                u64::from(self.room_password_attempts),
            ),
            ("room_password_window_secs", self.room_password_window_secs),
            (
                "ws_connections_per_user",
                u64::from(self.ws_connections_per_user),
            ),
            (
                "ws_connections_per_ip",
                u64::from(self.ws_connections_per_ip),
            ),
            ("outbound_queue_frames", self.outbound_queue_frames as u64),
            ("max_header_bytes", self.max_header_bytes as u64),
            ("max_headers", self.max_headers as u64),
            (
                "max_reactions_per_message",
                self.max_reactions_per_message as u64,
            ),
        ];
        if !self.nats_url.trim().is_empty() && self.database_url.trim().is_empty() {
            return Err(ConfigError::Invalid {
                key: "nats_url",
                reason: "a cluster needs PostgreSQL: set PALAVER_DATABASE_URL=postgres://… (the embedded SQLite \
                         database serves one node only)"
                    .into(),
            });
        }
        if !self.nats_url.trim().is_empty() && self.jwt_secret.len() < MIN_JWT_SECRET_BYTES {
            return Err(ConfigError::Invalid {
                key: "nats_url",
                reason: format!(
                    "every node of a cluster must accept the others' tokens: set PALAVER_JWT_SECRET (at least \
                     {MIN_JWT_SECRET_BYTES} bytes) to the same value on every node"
                ),
            });
        }
        if self.cluster_dead_after_ms <= self.cluster_heartbeat_ms {
            return Err(ConfigError::Invalid {
                key: "cluster_dead_after_ms",
                reason: "must be longer than cluster_heartbeat_ms".into(),
            });
        }
        let node_id = self.node_id.trim();
        if !node_id.is_empty() && !crate::cluster::subjects::is_token(node_id) {
            return Err(ConfigError::Invalid {
                key: "node_id",
                reason: "at most 64 letters, digits, '-' and '_'".into(),
            });
        }
        if !crate::cluster::subjects::is_token(&self.cluster_name) {
            return Err(ConfigError::Invalid {
                key: "cluster_name",
                reason: "1 to 64 letters, digits, '-' and '_'".into(),
            });
        }
        if let Some((key, _)) = counts.iter().find(|(_, value)| *value == 0) {
            return Err(ConfigError::Invalid {
                key,
                reason: "must be at least 1".into(),
            });
        }
        for (key, value, most) in [
            (
                "max_header_bytes",
                self.max_header_bytes,
                MAX_HEADER_BYTES_LIMIT,
            ),
            ("max_headers", self.max_headers, MAX_HEADERS_LIMIT),
        ] {
            if value > most {
                return Err(ConfigError::Invalid {
                    key,
                    reason: format!("must be at most {most}"),
                });
            }
        }
        if self.env == Mode::Production && self.allowed_origins.iter().any(|origin| origin == "*") {
            return Err(ConfigError::Invalid {
                key: "allowed_origins",
                reason: "\"*\" would let any site use visitors' sessions; list the origins in production".into(),
            });
        }
        if self.pong_timeout_secs <= self.ping_interval_secs {
            return Err(ConfigError::Invalid {
                key: "pong_timeout_secs",
                reason: "must be longer than ping_interval_secs".into(),
            });
        }
        if self.env == Mode::Production && self.jwt_secret.len() < MIN_JWT_SECRET_BYTES {
            return Err(ConfigError::Invalid {
                key: "jwt_secret",
                reason: format!(
                    "production mode needs PALAVER_JWT_SECRET of at least {MIN_JWT_SECRET_BYTES} bytes \
                     (e.g. `openssl rand -base64 48`); refusing to start"
                ),
            });
        }
        Ok(())
    }

    /// The pool and query timeout.
    pub fn db_timeout(&self) -> Duration {
        Duration::from_millis(self.db_timeout_ms)
    }

    /// How long a token lives.
    pub fn token_ttl(&self) -> time::Duration {
        time::Duration::seconds(i64::try_from(self.token_ttl_secs).unwrap_or(i64::MAX))
    }

    /// Whether the JWT secret must be generated (dev mode with a missing or short secret).
    pub fn needs_generated_secret(&self) -> bool {
        self.jwt_secret.len() < MIN_JWT_SECRET_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_describe_the_embedded_dev_server() {
        let settings = Settings::load_from(vars(&[])).unwrap();
        assert_eq!(settings.env, Mode::Dev);
        assert_eq!(settings.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(settings.database_url, "");
        assert_eq!(settings.sqlite_path, PathBuf::from("./data/palaver.db"));
        assert_eq!(settings.bcrypt_cost, 12);
        assert_eq!(settings.max_message_bytes, 65536);
        assert_eq!(
            (settings.max_header_bytes, settings.max_headers),
            (16384, 100)
        );
        assert!(settings.needs_generated_secret());
    }

    #[test]
    fn environment_overrides_by_key_name() {
        let settings = Settings::load_from(vars(&[
            ("PALAVER_DATABASE_URL", "postgres://postgres@127.0.0.1/test"),
            ("PALAVER_LISTEN", "0.0.0.0:9000"),
            ("PALAVER_BCRYPT_COST", "4"),
            ("PALAVER_COOKIE_SECURE", "true"),
            ("UNRELATED", "x"),
        ]))
        .unwrap();
        assert_eq!(settings.database_url, "postgres://postgres@127.0.0.1/test");
        assert_eq!(settings.listen.port(), 9000);
        assert_eq!(settings.bcrypt_cost, 4);
        assert!(settings.cookie_secure);
    }

    #[test]
    fn production_refuses_a_missing_or_short_secret() {
        for secret in ["", "short-secret"] {
            let err = Settings::load_from(vars(&[
                ("PALAVER_ENV", "production"),
                ("PALAVER_JWT_SECRET", secret),
            ]))
            .unwrap_err();
            assert!(err.to_string().contains("jwt_secret"), "{err}");
        }
        let strong = "x".repeat(MIN_JWT_SECRET_BYTES);
        let settings = Settings::load_from(vars(&[
            ("PALAVER_ENV", "production"),
            ("PALAVER_JWT_SECRET", &strong),
        ]))
        .unwrap();
        assert_eq!(settings.env, Mode::Production);
    }

    #[test]
    fn allowed_origins_come_as_a_comma_separated_list_and_star_is_dev_only() {
        let settings = Settings::load_from(vars(&[(
            "PALAVER_ALLOWED_ORIGINS",
            "https://a.example,https://b.example",
        )]))
        .unwrap();
        assert_eq!(
            settings.allowed_origins,
            ["https://a.example", "https://b.example"]
        );
        let strong = "x".repeat(MIN_JWT_SECRET_BYTES);
        let star = vars(&[
            ("PALAVER_ENV", "production"),
            ("PALAVER_JWT_SECRET", &strong),
            ("PALAVER_ALLOWED_ORIGINS", "*"),
        ]);
        assert!(
            Settings::load_from(star)
                .unwrap_err()
                .to_string()
                .contains("allowed_origins")
        );
    }

    #[test]
    fn a_bad_value_is_reported_under_its_own_name() {
        for key in [
            "db_pool_size",
            "token_ttl_secs",
            "ping_interval_secs",
            "ws_message_limit",
            "ws_message_window_ms",
            "ws_flood_refusals",
            "http_requests_per_minute",
            "registrations_per_hour",
            "login_failure_limit",
            "login_ip_failure_limit",
            "login_failure_window_secs",
            "room_password_attempts",
            "room_password_window_secs",
            "ws_connections_per_user",
            "ws_connections_per_ip",
            "outbound_queue_frames",
            "max_header_bytes",
            "max_headers",
        ] {
            let variable = format!("PALAVER_{}", key.to_uppercase());
            let err = Settings::load_from(vars(&[(&variable, "0")])).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("invalid setting {key} ({variable}): must be at least 1")
            );
        }
        let err = Settings::load_from(vars(&[("PALAVER_PONG_TIMEOUT_SECS", "30")])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid setting pong_timeout_secs (PALAVER_PONG_TIMEOUT_SECS)"),
            "{err}"
        );
    }

    #[test]
    fn a_cluster_refuses_the_embedded_database() {
        let err = Settings::load_from(vars(&[("PALAVER_NATS_URL", "nats://127.0.0.1:4222")]))
            .unwrap_err();
        let line = err.to_string();
        assert!(
            line.contains("PALAVER_NATS_URL") && line.contains("PALAVER_DATABASE_URL"),
            "{line}"
        );
        assert!(!line.contains('\n'), "one readable line: {line}");
        let postgres = (
            "PALAVER_DATABASE_URL",
            "postgres://postgres@127.0.0.1/palaver",
        );
        let nats = ("PALAVER_NATS_URL", "nats://127.0.0.1:4222");
        let err = Settings::load_from(vars(&[nats, postgres])).unwrap_err();
        assert!(
            err.to_string().contains("PALAVER_JWT_SECRET"),
            "a generated secret per node would make every node refuse the others' tokens: {err}"
        );
        let secret = (
            "PALAVER_JWT_SECRET",
            "a-cluster-wide-secret-0123456789abcdef",
        );
        let clustered = Settings::load_from(vars(&[nats, postgres, secret])).unwrap();
        assert_eq!(clustered.nats_url, "nats://127.0.0.1:4222");
        let err = Settings::load_from(vars(&[nats, postgres, secret, ("PALAVER_NODE_ID", "a.b")]))
            .unwrap_err();
        assert!(err.to_string().contains("node_id"), "{err}");
    }

    #[test]
    fn out_of_range_values_are_refused() {
        assert!(Settings::load_from(vars(&[("PALAVER_MAX_MESSAGE_BYTES", "2000000")])).is_err());
        assert!(Settings::load_from(vars(&[("PALAVER_BCRYPT_COST", "3")])).is_err());
        let err = Settings::load_from(vars(&[("PALAVER_MAX_HEADER_BYTES", "262145")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid setting max_header_bytes (PALAVER_MAX_HEADER_BYTES): must be at most 262144"
        );
        let err = Settings::load_from(vars(&[("PALAVER_MAX_HEADERS", "10001")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid setting max_headers (PALAVER_MAX_HEADERS): must be at most 10000"
        );
        assert!(Settings::load_from(vars(&[("PALAVER_LISTEN", "not an address")])).is_err());
    }

    #[test]
    fn a_config_file_overrides_defaults_and_the_environment_overrides_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("palaver.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:7000\"\nbcrypt_cost = 10\n").unwrap();
        let settings = Settings::load_from(vars(&[
            ("PALAVER_CONFIG", path.to_str().unwrap()),
            ("PALAVER_BCRYPT_COST", "5"),
        ]))
        .unwrap();
        assert_eq!(settings.listen.port(), 7000);
        assert_eq!(settings.bcrypt_cost, 5);
    }
}
