//! The `login-timing` scenario: how long a failed login takes for an account that exists and for one that does not.
//! The server does one bcrypt verification either way (a dummy hash for unknown accounts), so the two should take the
//! same time and the answer should not reveal which accounts exist. A measurement, not a verdict: run it against a
//! server with a realistic `bcrypt_cost` and generous login failure limits.

use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{Value, json};

use crate::client;

/// Options of the `login-timing` scenario.
#[derive(clap::Args, Clone)]
pub struct Options {
    /// Wrong-password logins per account kind (known and unknown), interleaved.
    #[arg(long, default_value_t = 30)]
    samples: usize,
}

/// Runs the scenario against `url`.
pub async fn run(url: &str, options: Options) -> anyhow::Result<Value> {
    let http = reqwest::Client::new();
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let known = format!("t{tag}_known");
    client::user(&http, url, &known).await?;
    let unknown = format!("t{tag}_nobody");
    let (mut known_times, mut unknown_times) = (Vec::new(), Vec::new());
    for round in 0..options.samples {
        for (username, times) in [(&known, &mut known_times), (&unknown, &mut unknown_times)] {
            let login =
                json!({"username": username, "password": format!("wrong password {round}")});
            let started = Instant::now();
            let answer = http
                .post(format!("{url}/api/login"))
                .json(&login)
                .send()
                .await?;
            times.push(started.elapsed());
            if answer.status() != reqwest::StatusCode::UNAUTHORIZED {
                bail!(
                    "a wrong password for {username} was answered {} (raise the login failure limits)",
                    answer.status()
                );
            }
        }
    }
    let (known, unknown) = (median(known_times), median(unknown_times));
    Ok(json!({
        "samples_each": options.samples,
        "known_user_p50_ms": millis(known),
        "unknown_user_p50_ms": millis(unknown),
        "ratio": known.as_secs_f64() / unknown.as_secs_f64(),
    }))
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort_unstable();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}
