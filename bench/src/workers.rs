//! The bench's worker processes and how the parent steers them.
//!
//! Every scenario runs as a parent that steers and one or more workers that hold the clients. With
//! `--processes 1` (the default) the one worker is a task of the parent's own process; with `--processes N` the
//! bench starts itself N times (`std::env::current_exe`, the same arguments plus the hidden `--worker I --tag T`),
//! so that each process holds its share of the sockets under the per-process open-file limit.
//!
//! Parent and worker speak in lines, each one JSON object `{"step": "<name>", "data": <value>}`: the worker writes
//! to its standard output, the parent to the worker's standard input (in one process: channels carrying the same
//! lines). A scenario is a sequence of steps: each worker says `ready` once its setup is done (users registered,
//! rooms joined), the parent waits for all of them and says `start`, so that no setup falls in the measured window;
//! further steps are the scenario's own; the last thing a worker says is `report`, its partial results. A worker that
//! fails says `error` with the message, and the parent stops the run with it. Nothing else may be written to a
//! worker's standard output.

use std::future::Future;
use std::io::{BufRead as _, Write as _};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What a worker knows about the run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The servers' base URLs; users and rooms are created over the first (the nodes share one database).
    pub urls: Vec<String>,
    /// How many workers share the clients.
    pub workers: usize,
    /// This worker's number, 0…workers-1.
    pub index: usize,
    /// The run's tag: it names the run's rooms, and its users with the worker's number.
    pub tag: String,
}

impl Plan {
    /// Whether this worker runs every client (one process).
    pub fn alone(&self) -> bool {
        self.workers <= 1
    }

    /// The tag this worker's users are named by (`b<tag>_<i>`): the run's tag alone in one process, so that names
    /// are what they always were; with the worker's number when several register users side by side.
    pub fn user_tag(&self) -> String {
        if self.alone() {
            self.tag.clone()
        } else {
            format!("{}w{}", self.tag, self.index)
        }
    }
}

/// A fresh tag for a run: 8 hex digits.
pub fn new_tag() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

/// The sending half of a [`Link`], for a worker to report an error after its work gave up the link.
#[derive(Clone)]
pub struct Teller {
    out: mpsc::UnboundedSender<String>,
}

impl Teller {
    /// Says `step` with `data`.
    pub fn say(&self, step: &str, data: Value) -> anyhow::Result<()> {
        let line = json!({"step": step, "data": data}).to_string();
        self.out
            .send(line)
            .map_err(|_| anyhow::anyhow!("the other side of the run has gone"))
    }
}

/// One side of the conversation between the parent and one worker.
pub struct Link {
    teller: Teller,
    incoming: mpsc::UnboundedReceiver<String>,
    /// Put before the other side's errors: empty for the worker of a one-process run, so its errors read as before.
    label: String,
}

impl Link {
    /// Two connected ends, parent's first, for a worker that is a task of this process.
    fn pair(label: String) -> (Link, Link) {
        let (to_worker, from_parent) = mpsc::unbounded_channel();
        let (to_parent, from_worker) = mpsc::unbounded_channel();
        let parent = Link {
            teller: Teller { out: to_worker },
            incoming: from_worker,
            label,
        };
        let worker = Link {
            teller: Teller { out: to_parent },
            incoming: from_parent,
            label: String::new(),
        };
        (parent, worker)
    }

    /// A worker process's end: lines from standard input, lines to standard output. Plain threads do the blocking
    /// reads and writes (a pending read of tokio's stdin would hold up the runtime's shutdown); the returned thread
    /// ends once every sender of the link is gone and what they said is written.
    pub fn stdio() -> (Link, std::thread::JoinHandle<()>) {
        let (to_worker, incoming) = mpsc::unbounded_channel();
        let (out, mut outgoing) = mpsc::unbounded_channel::<String>();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if to_worker.send(line).is_err() {
                    break;
                }
            }
        });
        let writer = std::thread::spawn(move || {
            let mut stdout = std::io::stdout();
            while let Some(line) = outgoing.blocking_recv() {
                if writeln!(stdout, "{line}")
                    .and_then(|()| stdout.flush())
                    .is_err()
                {
                    break;
                }
            }
        });
        let link = Link {
            teller: Teller { out },
            incoming,
            label: String::new(),
        };
        (link, writer)
    }

    /// The parent's end for a worker process: pumps lines to its standard input and from its standard output.
    fn child(label: String, child: &mut Child) -> anyhow::Result<Link> {
        let mut stdin = child.stdin.take().context("a worker without stdin")?;
        let stdout = child.stdout.take().context("a worker without stdout")?;
        let (out, mut outgoing) = mpsc::unbounded_channel::<String>();
        let (to_parent, incoming) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(line) = outgoing.recv().await {
                let written = async {
                    stdin.write_all(line.as_bytes()).await?;
                    stdin.write_all(b"\n").await?;
                    stdin.flush().await
                };
                if written.await.is_err() {
                    break;
                }
            }
        });
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if to_parent.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Link {
            teller: Teller { out },
            incoming,
            label,
        })
    }

    /// A sender for this link that outlives it.
    pub fn teller(&self) -> Teller {
        self.teller.clone()
    }

    /// Says `step` with `data`.
    pub fn say(&self, step: &str, data: Value) -> anyhow::Result<()> {
        self.teller.say(step, data)
    }

    /// Waits for the other side to say `step`; returns its data. An `error` from the other side, another step, or
    /// the end of the link is an error.
    pub async fn hear(&mut self, step: &str) -> anyhow::Result<Value> {
        let label = &self.label;
        let Some(line) = self.incoming.recv().await else {
            bail!("{label}ended before saying {step}");
        };
        let mut message: Value = serde_json::from_str(&line)
            .with_context(|| format!("{label}said something that is not a step: {line}"))?;
        match message["step"].as_str() {
            Some(said) if said == step => Ok(message["data"].take()),
            Some("error") => bail!("{label}{}", message["data"].as_str().unwrap_or("failed")),
            _ => bail!("{label}said {line} where {step} was expected"),
        }
    }
}

/// Runs a worker's `work` and, if it fails, tells the parent why.
async fn serve(teller: Teller, work: impl Future<Output = anyhow::Result<()>>) -> bool {
    match work.await {
        Ok(()) => true,
        Err(err) => {
            let _ = teller.say("error", json!(format!("{err:#}")));
            false
        }
    }
}

/// A worker process's whole life: `work` speaks to the parent over standard input and output. Returns whether the
/// work succeeded.
pub async fn serve_stdio<F, Fut>(work: F) -> bool
where
    F: FnOnce(Link) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let (link, writer) = Link::stdio();
    let teller = link.teller();
    let ok = serve(teller.clone(), work(link)).await;
    drop(teller);
    let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    ok
}

/// The parent's side: the workers of a run.
pub struct Workers {
    links: Vec<Link>,
    children: Vec<Child>,
    tasks: Vec<JoinHandle<bool>>,
}

impl Workers {
    /// Starts the run's workers: with `processes` 1 a task of this process running `work`, else `processes` copies
    /// of this program with `--worker I --tag <tag>` added to its arguments.
    pub fn launch<F, Fut>(
        urls: &[String],
        processes: usize,
        tag: &str,
        work: F,
    ) -> anyhow::Result<Workers>
    where
        F: FnOnce(Plan, Link) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let mut workers = Workers {
            links: Vec::new(),
            children: Vec::new(),
            tasks: Vec::new(),
        };
        if processes <= 1 {
            let plan = Plan {
                urls: urls.to_vec(),
                workers: 1,
                index: 0,
                tag: tag.to_owned(),
            };
            let (parent, worker) = Link::pair(String::new());
            let teller = worker.teller();
            let work = work(plan, worker);
            workers.tasks.push(tokio::spawn(serve(teller, work)));
            workers.links.push(parent);
            return Ok(workers);
        }
        let program = std::env::current_exe().context("finding this program to start workers")?;
        let args: Vec<_> = std::env::args_os().skip(1).collect();
        for index in 0..processes {
            let mut child = Command::new(&program)
                .args(&args)
                .arg("--worker")
                .arg(index.to_string())
                .arg("--tag")
                .arg(tag)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting worker {index}"))?;
            workers
                .links
                .push(Link::child(format!("worker {index}: "), &mut child)?);
            workers.children.push(child);
        }
        Ok(workers)
    }

    /// How many workers there are.
    pub fn len(&self) -> usize {
        self.links.len()
    }

    /// Waits until every worker has said `step`; their data, in worker order.
    pub async fn gather(&mut self, step: &str) -> anyhow::Result<Vec<Value>> {
        futures_util::future::try_join_all(self.links.iter_mut().map(|link| link.hear(step))).await
    }

    /// Says `step` with `data` to every worker.
    pub fn tell(&self, step: &str, data: Value) -> anyhow::Result<()> {
        for link in &self.links {
            link.say(step, data.clone())?;
        }
        Ok(())
    }

    /// Ends the conversation and waits (up to ten seconds each) for the workers to end.
    pub async fn finish(self) -> anyhow::Result<()> {
        drop(self.links);
        for (index, mut child) in self.children.into_iter().enumerate() {
            match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
                Ok(Ok(status)) if status.success() => {}
                Ok(Ok(status)) => bail!("worker {index} ended with {status}"),
                Ok(Err(err)) => bail!("waiting for worker {index}: {err}"),
                Err(_) => bail!("worker {index} did not end after its report"),
            }
        }
        for task in self.tasks {
            task.await.context("the worker task")?;
        }
        Ok(())
    }
}

/// The sum of the unsigned number `key` over the workers' data.
pub fn sum(data: &[Value], key: &str) -> u64 {
    data.iter()
        .map(|value| value[key].as_u64().unwrap_or(0))
        .sum()
}

/// The largest unsigned number `key` over the workers' data, if any has one.
pub fn max(data: &[Value], key: &str) -> Option<u64> {
    data.iter().filter_map(|value| value[key].as_u64()).max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_and_maxima_over_workers() {
        let data = vec![
            json!({"acked": 3, "at": 10}),
            json!({"acked": 4}),
            json!({"acked": 5, "at": 7}),
        ];
        assert_eq!(sum(&data, "acked"), 12);
        assert_eq!(sum(&data, "missing"), 0);
        assert_eq!(max(&data, "at"), Some(10));
        assert_eq!(max(&data, "missing"), None);
    }

    #[test]
    fn user_tags_are_distinct_per_worker_and_unchanged_alone() {
        let plan = |workers, index| Plan {
            urls: vec!["http://x".into()],
            workers,
            index,
            tag: "abcd1234".into(),
        };
        assert_eq!(plan(1, 0).user_tag(), "abcd1234");
        assert_eq!(plan(3, 0).user_tag(), "abcd1234w0");
        assert_eq!(plan(3, 2).user_tag(), "abcd1234w2");
        // The longest bench username stays within the server's 30 characters.
        assert!(format!("b{}_{}", plan(99, 98).user_tag(), 99_999).len() <= 30);
    }

    #[tokio::test]
    async fn a_worker_task_is_steered_step_by_step() {
        let urls = vec!["http://x".to_owned()];
        let mut workers = Workers::launch(&urls, 1, "t", |plan, mut link| async move {
            link.say("ready", json!({"index": plan.index}))?;
            let n = link.hear("start").await?["n"].as_u64().unwrap_or(0);
            link.say("report", json!({"twice": n * 2}))?;
            Ok(())
        })
        .unwrap();
        assert_eq!(
            workers.gather("ready").await.unwrap(),
            [json!({"index": 0})]
        );
        workers.tell("start", json!({"n": 21})).unwrap();
        assert_eq!(
            workers.gather("report").await.unwrap(),
            [json!({"twice": 42})]
        );
        workers.finish().await.unwrap();
    }

    #[tokio::test]
    async fn a_failing_worker_stops_the_run_with_its_message() {
        let urls = vec!["http://x".to_owned()];
        let mut workers = Workers::launch(&urls, 1, "t", |_, _link| async move {
            bail!("registering bt_0: 429 Too Many Requests")
        })
        .unwrap();
        let err = workers.gather("ready").await.unwrap_err();
        assert_eq!(err.to_string(), "registering bt_0: 429 Too Many Requests");
    }
}
