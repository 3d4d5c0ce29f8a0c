//! The browser client end to end: a real server (SQLite) and real headless Chromium, driven by
//! `integration-tests/e2e/chat.test.mjs` through playwright-core. Two people register, meet in a private room, chat,
//! see each other online and typing; one drops off the network and comes back to every message exactly once; markup
//! stays text; older pages load; a new device rejoins its rooms; messages are edited, deleted, reacted to and replied
//! to, live and across a reconnect; unread badges, the new-messages divider and read marks; search; a direct
//! conversation opened from the member list, shown to the other person by name without a reload, blocked (the
//! refusal shown, nothing delivered) and unblocked, and resumed after a reconnect; history pages merged with live
//! changes by their `as_of`; phone width; leaving and deleting. Screenshots go to `target/e2e/` (`chat.png` at
//! least).
//!
//! Needs Chromium (`/usr/bin/chromium`, or `PALAVER_CHROMIUM`), Node.js and `npm ci --prefix integration-tests/e2e`.
//! Without them the test is skipped with a note, except in CI (`CI=true`), where it fails: a browser suite that
//! silently skips in CI tests nothing.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use palaver_integration_tests::{Engine, TestServer};
use tokio::process::Command;

/// How long the whole browser scenario may take (it takes well under a minute).
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(120);

/// The e2e package: `integration-tests/e2e`.
fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e")
}

/// Where screenshots go: `<target>/e2e`.
fn output_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
        });
    target.join("e2e")
}

fn chromium() -> PathBuf {
    std::env::var_os("PALAVER_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Whether we run in CI, where a missing browser is a failure (the rule the PostgreSQL suite follows).
fn running_in_ci() -> bool {
    std::env::var("CI").is_ok_and(|ci| ci.eq_ignore_ascii_case("true") || ci == "1")
}

/// What the scenario needs and is missing, if anything.
async fn missing_prerequisite() -> Option<String> {
    if !chromium().exists() {
        return Some(format!(
            "no Chromium at {} (apt-get install -y chromium, or set PALAVER_CHROMIUM)",
            chromium().display()
        ));
    }
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    if !node.is_ok_and(|status| status.success()) {
        return Some("no `node` on PATH".into());
    }
    if !e2e_dir().join("node_modules/playwright-core").is_dir() && !install_e2e_package().await {
        return Some("no playwright-core (npm ci --prefix integration-tests/e2e)".into());
    }
    None
}

/// Installs the e2e package's locked dependencies (playwright-core only; it never downloads a browser), so that
/// `cargo test --workspace` needs no step before it. Whether it worked.
async fn install_e2e_package() -> bool {
    eprintln!("installing the e2e package: npm ci --prefix integration-tests/e2e");
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(e2e_dir())
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .stdin(Stdio::null())
        .status()
        .await;
    status.is_ok_and(|status| status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_client_chats_resumes_and_renders_text_safely() {
    if let Some(missing) = missing_prerequisite().await {
        assert!(
            !running_in_ci(),
            "CI=true but the browser test cannot run: {missing}"
        );
        eprintln!("browser test skipped: {missing}");
        return;
    }
    // The scenario posts fifty messages in a burst to fill a history page; the per-user limit has its own tests.
    let server = TestServer::start_with(Engine::Sqlite, &[("PALAVER_WS_MESSAGE_LIMIT", "1000")])
        .await
        .expect("SQLite needs nothing outside the process");
    let out = output_dir();
    let run = Command::new("node")
        .args(["--test-reporter=spec", "chat.test.mjs"])
        .current_dir(e2e_dir())
        .env("PALAVER_E2E_URL", server.url(""))
        .env("PALAVER_E2E_OUT", &out)
        .env("PALAVER_CHROMIUM", chromium())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(SCENARIO_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| panic!("the browser scenario took longer than {SCENARIO_TIMEOUT:?}"))
        .expect("node starts");
    println!("{}", String::from_utf8_lossy(&output.stdout));
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    server.stop().await;
    assert!(
        output.status.success(),
        "the browser scenario failed ({})",
        output.status
    );
    assert!(
        out.join("chat.png").is_file(),
        "the scenario saves a screenshot"
    );
}
