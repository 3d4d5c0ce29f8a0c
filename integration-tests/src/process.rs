//! The `palaver` binary as a child process, for tests that must end the server the hard way (SIGKILL, as a crash or
//! a power cut would) and start it again on the same database.
//!
//! The binary is built once per test process with `cargo build -p palaver-runtime --bin palaver`, in the profile the
//! tests were built in; cargo names the executable it produced, so no path is guessed.
//!
//! The child binds `127.0.0.1:0` itself and the test learns the port from the child's log (the `palaver is listening`
//! line), so no port is picked, released and raced for by another process in between.
//!
//! ```no_run
//! # async fn example() {
//! use palaver_integration_tests::{Engine, process::ServerProcess};
//! let Some(mut server) = ServerProcess::start(Engine::Sqlite, &[]).await else { return };
//! let _health = server.url("/healthz");
//! server.kill().await; // SIGKILL: no graceful shutdown, no flush
//! server.restart().await; // the same database, a new port
//! # }
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::sync::OnceCell;

use crate::pg::{self, PgDatabase};
use crate::{Engine, TEST_JWT_SECRET};

/// How long a started server may take to log its address and then to answer `GET /healthz`.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long building the binary may take (a cold build of the runtime in debug).
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

/// The built binary, shared by every test of this process.
static BINARY: OnceCell<PathBuf> = OnceCell::const_new();

/// The path of the `palaver` binary, built on first use in the profile the running tests were built in.
///
/// # Panics
/// When cargo cannot build it, with cargo's output.
pub async fn palaver_binary() -> &'static Path {
    BINARY.get_or_init(build_binary).await
}

/// `--release` or `--profile <name>` for the profile this test executable was built in (`target/<profile>/deps/…`).
fn profile_args() -> Vec<String> {
    let profile_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.file_name()?.to_str()?.to_owned()));
    match profile_dir.as_deref() {
        None | Some("debug") => Vec::new(),
        Some("release") => vec!["--release".into()],
        Some(other) => vec!["--profile".into(), other.into()],
    }
}

async fn build_binary() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration-tests lives in the workspace");
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args([
            "build",
            "-p",
            "palaver-runtime",
            "--bin",
            "palaver",
            "--message-format=json-render-diagnostics",
        ])
        .args(profile_args())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(BUILD_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("building palaver took longer than {BUILD_TIMEOUT:?}"))
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cargo build -p palaver-runtime --bin palaver failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| {
            message["reason"] == "compiler-artifact" && message["target"]["name"] == "palaver"
        })
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo named no palaver executable:\n{stdout}"))
}

/// The log filter a child runs with unless a test sets `PALAVER_LOG`: warnings and errors, plus the info line that
/// names the address the server bound.
pub const DEFAULT_LOG_FILTER: &str = "warn,palaver_runtime::server=info";

/// The message of the line the server logs once it listens, with its address in the `local_addr` field.
const LISTENING: &str = "palaver is listening";

/// The address in the server's `palaver is listening` log line, in the JSON format (`fields.local_addr`) or the
/// pretty one (`… palaver is listening local_addr=127.0.0.1:PORT`); `None` for any other line.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    if let Ok(event) = serde_json::from_str::<serde_json::Value>(line) {
        let fields = &event["fields"];
        if fields["message"] != LISTENING {
            return None;
        }
        return fields["local_addr"].as_str()?.parse().ok();
    }
    let (_, after) = line.split_once(LISTENING)?;
    let (_, addr) = after.split_once("local_addr=")?;
    addr.split_whitespace().next()?.parse().ok()
}

/// The `palaver` binary running as a child process on a database that outlives it: SQLite in a temporary directory,
/// or a fresh PostgreSQL schema (see [`crate::pg`]). Killed when dropped.
pub struct ServerProcess {
    child: Option<Child>,
    /// The address of the current (or last) run, as its log named it.
    addr: Option<SocketAddr>,
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
    /// How many times the binary was started, to name each run's log.
    runs: u32,
    // Declared last: the process is gone before the schema is dropped.
    _database: Option<PgDatabase>,
}

impl ServerProcess {
    /// Builds the binary if needed and starts it on `engine` with test settings (a fixed JWT secret, so tokens
    /// survive a restart; bcrypt cost 4; JSON logs filtered with [`DEFAULT_LOG_FILTER`]) plus `extra` `PALAVER_*`
    /// settings; waits until it logs its address and answers `/healthz`. A `PALAVER_LOG` in `extra` must keep the
    /// `info` line of `palaver_runtime::server`; `PALAVER_LOG_FORMAT=pretty` is fine. `None` when PostgreSQL was asked
    /// for and is not available outside CI (see [`crate::pg`]).
    pub async fn start(engine: Engine, extra: &[(&str, &str)]) -> Option<ServerProcess> {
        let database = match engine {
            Engine::Sqlite => None,
            Engine::Postgres => Some(pg::fresh_database_url().await?),
        };
        let url = database
            .as_ref()
            .map(|db| db.url().to_owned())
            .unwrap_or_default();
        Some(Self::launch_on(&url, database, extra).await)
    }

    /// Like [`ServerProcess::start`], on the PostgreSQL database at `url`, which the caller provides and keeps for as
    /// long as the process runs: several processes on one database are the nodes of a cluster.
    pub async fn on_postgres(url: &str, extra: &[(&str, &str)]) -> ServerProcess {
        Self::launch_on(url, None, extra).await
    }

    async fn launch_on(
        database_url: &str,
        database: Option<PgDatabase>,
        extra: &[(&str, &str)],
    ) -> ServerProcess {
        let dir = tempfile::tempdir().expect("a temporary directory for the test database");
        let sqlite_path = dir.path().join("palaver.db");
        let mut env: Vec<(String, String)> = vec![
            (
                "PALAVER_SQLITE_PATH".into(),
                sqlite_path.display().to_string(),
            ),
            ("PALAVER_DATABASE_URL".into(), database_url.to_owned()),
            ("PALAVER_DB_POOL_SIZE".into(), "4".into()),
            ("PALAVER_BCRYPT_COST".into(), "4".into()),
            ("PALAVER_JWT_SECRET".into(), TEST_JWT_SECRET.into()),
            ("PALAVER_LOG".into(), DEFAULT_LOG_FILTER.into()),
            ("PALAVER_LOG_FORMAT".into(), "json".into()),
            ("PALAVER_LISTEN".into(), "127.0.0.1:0".into()),
        ];
        env.extend(
            extra
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string())),
        );
        let mut server = ServerProcess {
            child: None,
            addr: None,
            env,
            dir,
            runs: 0,
            _database: database,
        };
        server.launch().await;
        server
    }

    /// Starts the binary with this server's settings on a port it picks, learns the port from its log, and waits
    /// until `/healthz` answers 200.
    async fn launch(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        let binary = palaver_binary().await;
        self.runs += 1;
        self.addr = None;
        let log_path = self.log_path();
        let log = std::fs::File::create(&log_path).expect("a log file in the temporary directory");
        let mut command = self.palaver(binary);
        command
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log file, twice"))
            .stderr(log)
            .kill_on_drop(true);
        let child = command.spawn().expect("the palaver binary starts");
        self.child = Some(child);
        self.addr = Some(self.wait_listening().await);
        self.wait_healthy().await;
    }

    /// Runs a `palaver` sub-command (e.g. `audit`) with this server's settings and returns its output.
    pub async fn command(&self, args: &[&str]) -> std::process::Output {
        let binary = palaver_binary().await;
        let mut command = self.palaver(binary);
        command
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .await
            .expect("the palaver binary runs")
    }

    /// The binary with only this server's settings: none of the `PALAVER_*` variables or `RUST_LOG` of the shell
    /// that ran the tests.
    fn palaver(&self, binary: &Path) -> Command {
        let mut command = Command::new(binary);
        for (key, _) in std::env::vars_os() {
            if key
                .to_str()
                .is_some_and(|key| key.starts_with("PALAVER_") || key == "RUST_LOG")
            {
                command.env_remove(key);
            }
        }
        command.envs(self.env.iter().map(|(key, value)| (key, value)));
        command
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("palaver-{}.log", self.runs))
    }

    /// What the current run has logged so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Reads the current run's log until its `palaver is listening` line names the address; panics, with the log,
    /// when the process exits first or no such line appears within [`START_TIMEOUT`]. Only whole lines count: the
    /// one being written may still lack digits of its port.
    async fn wait_listening(&mut self) -> SocketAddr {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        let mut poll = tokio::time::interval(Duration::from_millis(10));
        loop {
            poll.tick().await;
            let log = self.log();
            let whole = log.rsplit_once('\n').map_or("", |(whole, _)| whole);
            if let Some(addr) = whole.lines().find_map(listening_addr) {
                return addr;
            }
            let child = self.child.as_mut().expect("a started server");
            if let Some(status) = child.try_wait().expect("the child's status") {
                panic!(
                    "palaver exited ({status}) before it logged {LISTENING:?}; its log:\n{}",
                    self.log()
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "palaver logged no {LISTENING:?} line with its local_addr within {START_TIMEOUT:?} (a PALAVER_LOG \
                 must let `palaver_runtime::server=info` through); its log:\n{}",
                self.log()
            );
        }
    }

    /// Polls `/healthz` until it answers 200; panics, with the server's log, when the process exits first or the
    /// deadline passes.
    async fn wait_healthy(&mut self) {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()
            .expect("an HTTP client");
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        let mut poll = tokio::time::interval(Duration::from_millis(50));
        loop {
            poll.tick().await;
            let child = self.child.as_mut().expect("a started server");
            if let Some(status) = child.try_wait().expect("the child's status") {
                panic!(
                    "palaver exited ({status}) before it was healthy; its log:\n{}",
                    self.log()
                );
            }
            let healthy = http
                .get(self.url("/healthz"))
                .send()
                .await
                .is_ok_and(|response| response.status() == reqwest::StatusCode::OK);
            if healthy {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "palaver was not healthy within {START_TIMEOUT:?}; its log:\n{}",
                self.log()
            );
        }
    }

    /// Kills the server with SIGKILL (no graceful shutdown, nothing flushed) and waits until it is gone.
    pub async fn kill(&mut self) {
        let mut child = self.child.take().expect("a running server to kill");
        child.kill().await.expect("SIGKILL is delivered");
    }

    /// Sends the signal `name` (`STOP`, `CONT`, …) to the running server.
    pub async fn signal(&self, name: &str) {
        let pid = self.pid().expect("a running server to signal");
        let sent = Command::new("kill")
            .args([format!("-{name}"), pid.to_string()])
            .status()
            .await
            .expect("kill runs");
        assert!(sent.success(), "SIG{name} could not be sent to {pid}");
    }

    /// Sends SIGTERM, as an orchestrator stopping the server does, and waits at most `within` for it to exit; its
    /// exit status. Panics, with the log, if it is still running then.
    pub async fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("a running server to stop");
        let pid = child.id().expect("a running child has a pid");
        let sent = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM could not be sent to {pid}");
        match tokio::time::timeout(within, child.wait()).await {
            Ok(status) => status.expect("the child's exit status"),
            Err(_) => panic!(
                "palaver was still running {within:?} after SIGTERM; its log:\n{}",
                self.log()
            ),
        }
    }

    /// Starts the server again on the same database and settings, on a new port it picks and logs (see
    /// [`ServerProcess::addr`]).
    pub async fn restart(&mut self) {
        self.launch().await;
    }

    /// The process id of the current run, to read its memory use from `/proc`.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|child| child.id())
    }

    /// The address the current run listens on (after a kill, the last run's).
    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("the server was started")
    }

    /// `http://127.0.0.1:<port><path>` of the current run.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr(), path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listening_address_is_read_from_either_log_format() {
        let json = r#"{"timestamp":"2026-11-25T15:30:45.123456Z","level":"INFO","fields":{"message":"palaver is listening","local_addr":"127.0.0.1:40123"},"target":"palaver_runtime::server"}"#;
        let pretty = "2026-11-25T15:30:45.123456Z  INFO palaver_runtime::server: palaver is listening \
                      local_addr=127.0.0.1:40124";
        let addr = |port: u16| Some(SocketAddr::from(([127, 0, 0, 1], port)));
        assert_eq!(listening_addr(json), addr(40123));
        assert_eq!(listening_addr(pretty), addr(40124));
        let others = [
            r#"{"level":"WARN","fields":{"message":"cannot raise the open file limit"},"target":"palaver"}"#,
            r#"{"level":"INFO","fields":{"message":"palaver is listening"},"target":"palaver_runtime::server"}"#,
            "2026-11-25T15:30:45Z  WARN palaver_runtime::server: accept failed error=too many open files",
            "",
        ];
        for line in others {
            assert_eq!(listening_addr(line), None, "{line}");
        }
    }
}
