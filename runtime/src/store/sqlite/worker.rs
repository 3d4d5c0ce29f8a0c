//! The threads that own SQLite's connections. SQLite's calls block, so they never run on the async runtime: an async
//! caller sends a job over a bounded channel to a dedicated thread and awaits the answer on a oneshot.

use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, PoisonError};

use palaver_handlers::StoreError;
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::convert::Failure;

/// Work for the thread that owns a connection.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The shared end of a pool's queue: whichever of its threads is idle takes the next job.
type Queue = Mutex<mpsc::Receiver<Job>>;

/// A bounded queue of jobs served by threads that each own one connection to the same database. The threads end
/// once the pool is dropped and the jobs already queued are done.
pub(super) struct Pool {
    jobs: mpsc::Sender<Job>,
}

impl Pool {
    /// Starts `threads` threads named `name-N`, each with a connection from `open`, and returns once every one has
    /// its connection; if one cannot open, that error is returned and the threads already started end.
    pub(super) async fn start<O>(
        name: &str,
        threads: usize,
        capacity: usize,
        open: O,
    ) -> Result<Pool, StoreError>
    where
        O: Fn() -> Result<Connection, StoreError> + Send + Sync + 'static,
    {
        let (sender, receiver) = mpsc::channel(capacity);
        let queue = Arc::new(Mutex::new(receiver));
        let open = Arc::new(open);
        let mut readiness = Vec::with_capacity(threads);
        for index in 0..threads {
            let (ready, is_ready) = oneshot::channel();
            let queue = Arc::clone(&queue);
            let open = Arc::clone(&open);
            std::thread::Builder::new()
                .name(format!("{name}-{index}"))
                .spawn(move || serve(open.as_ref(), &queue, ready))
                .map_err(|err| {
                    StoreError::Backend(format!("cannot start the thread {name}-{index}: {err}"))
                })?;
            readiness.push(is_ready);
        }
        for is_ready in readiness {
            is_ready.await.map_err(|_| stopped())??;
        }
        Ok(Pool { jobs: sender })
    }

    /// Runs `work` on one of the pool's connections and returns its outcome. Waits (asynchronously) when the queue is
    /// full, which pushes back on callers instead of buffering without bound.
    pub(super) async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Failure> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |connection| {
            // A caller that was cancelled while its job waited in the queue wants no answer: skip the work.
            if !reply.is_closed() {
                let _ = reply.send(work(connection).map_err(StoreError::from));
            }
        });
        self.jobs.send(job).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Whether every thread of the pool has ended, so no job can run any more.
    pub(super) fn is_stopped(&self) -> bool {
        self.jobs.is_closed()
    }
}

/// What callers see once the threads are gone (or a job panicked and dropped its reply).
fn stopped() -> StoreError {
    StoreError::Unavailable("the SQLite worker thread has stopped".into())
}

/// A thread's life: open the connection, report, then run jobs until the pool is dropped.
fn serve(
    open: &(dyn Fn() -> Result<Connection, StoreError> + Send + Sync),
    queue: &Queue,
    ready: oneshot::Sender<Result<(), StoreError>>,
) {
    let mut connection = match open() {
        Ok(connection) => connection,
        Err(err) => {
            let _ = ready.send(Err(err));
            return;
        }
    };
    if ready.send(Ok(())).is_err() {
        // Whoever was opening the store gave up.
        return;
    }
    while let Some(job) = next_job(queue) {
        // A job that panics loses its answer (its caller sees `Unavailable`); an open transaction rolls back as it
        // unwinds. The connection and this thread carry on serving the others.
        if panic::catch_unwind(AssertUnwindSafe(|| job(&mut connection))).is_err() {
            tracing::error!(thread = ?std::thread::current().name(), "a SQLite job panicked");
        }
    }
}

/// The next job, or `None` once the pool is dropped and the queue drained. The lock is held only while waiting, so
/// idle threads take jobs in turn while busy ones work.
fn next_job(queue: &Queue) -> Option<Job> {
    // Nothing panics while holding the lock, but a poisoned lock would still guard a usable receiver.
    queue
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .blocking_recv()
}
