//! The `palaver` binary as a child process, for tests that must end the server the hard way (SIGKILL, as a crash or
//! a power cut would) and start it again on the same database.
//!
//! The binary is built once per test process with `cargo build -p palaver-runtime --bin palaver`, in the profile the
//! tests were built in; cargo names the executable it produced, so no path is guessed.
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

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::sync::OnceCell;

use crate::pg::{self, PgDatabase};
use crate::{Engine, TEST_JWT_SECRET};

/// How long a started server may take to answer `GET /healthz`.
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

/// A free port on 127.0.0.1 (free when asked; the server binds it a moment later).
fn free_local_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free local port")
}

/// The `palaver` binary running as a child process on a database that outlives it: SQLite in a temporary directory,
/// or a fresh PostgreSQL schema (see [`crate::pg`]). Killed when dropped.
pub struct ServerProcess {
    child: Option<Child>,
    addr: SocketAddr,
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
    /// How many times the binary was started, to name each run's log.
    runs: u32,
    // Declared last: the process is gone before the schema is dropped.
    _database: Option<PgDatabase>,
}

impl ServerProcess {
    /// Builds the binary if needed and starts it on `engine` with test settings (a fixed JWT secret, so tokens
    /// survive a restart; bcrypt cost 4; logs at `warn`) plus `extra` `PALAVER_*` settings; waits for `/healthz`.
    /// `None` when PostgreSQL was asked for and is not available outside CI (see [`crate::pg`]).
    pub async fn start(engine: Engine, extra: &[(&str, &str)]) -> Option<ServerProcess> {
        let dir = tempfile::tempdir().expect("a temporary directory for the test database");
        let database = match engine {
            Engine::Sqlite => None,
            Engine::Postgres => Some(pg::fresh_database_url().await?),
        };
        let sqlite_path = dir.path().join("palaver.db");
        let mut env: Vec<(String, String)> = vec![
            (
                "PALAVER_SQLITE_PATH".into(),
                sqlite_path.display().to_string(),
            ),
            (
                "PALAVER_DATABASE_URL".into(),
                database
                    .as_ref()
                    .map(|db| db.url().to_owned())
                    .unwrap_or_default(),
            ),
            ("PALAVER_DB_POOL_SIZE".into(), "4".into()),
            ("PALAVER_BCRYPT_COST".into(), "4".into()),
            ("PALAVER_JWT_SECRET".into(), TEST_JWT_SECRET.into()),
            ("PALAVER_LOG".into(), "warn".into()),
        ];
        env.extend(
            extra
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string())),
        );
        let mut server = ServerProcess {
            child: None,
            addr: free_local_addr(),
            env,
            dir,
            runs: 0,
            _database: database,
        };
        server.launch().await;
        Some(server)
    }

    /// Starts the binary on a fresh port with this server's settings and waits until `/healthz` answers 200.
    async fn launch(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        let binary = palaver_binary().await;
        self.runs += 1;
        self.addr = free_local_addr();
        let log_path = self.log_path();
        let log = std::fs::File::create(&log_path).expect("a log file in the temporary directory");
        let mut command = self.palaver(binary);
        command
            .env("PALAVER_LISTEN", self.addr.to_string())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log file, twice"))
            .stderr(log)
            .kill_on_drop(true);
        let child = command.spawn().expect("the palaver binary starts");
        self.child = Some(child);
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

    /// Starts the server again on the same database and settings (on a new port: see [`ServerProcess::addr`]).
    pub async fn restart(&mut self) {
        self.launch().await;
    }

    /// The process id of the current run, to read its memory use from `/proc`.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|child| child.id())
    }

    /// The address the current run listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port><path>` of the current run.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}
