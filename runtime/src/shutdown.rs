//! Graceful shutdown as a small type of its own: one [`Stop`] that the server pulls once, and a [`Shutdown`] that
//! every connection task holds and awaits beside its work (tokio's mini-redis does the same).

use tokio::sync::watch;

/// The server's end: pulling it asks every [`Shutdown`] to end.
pub struct Stop(watch::Sender<bool>);

/// A task's end: resolves once the server is stopping. Cheap to clone, one per connection.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A new pair: the trigger and the first listener (clone it for more).
pub fn channel() -> (Stop, Shutdown) {
    let (stop, listen) = watch::channel(false);
    (Stop(stop), Shutdown(listen))
}

impl Stop {
    /// Asks every listener to stop; harmless when none is left.
    pub fn stop(&self) {
        let _ = self.0.send(true);
    }
}

impl Shutdown {
    /// Resolves once the server is stopping (or the server is gone, which means the same).
    pub async fn stopped(&mut self) {
        // `wait_for`'s guard is not Send: drop it here so callers' futures stay Send.
        let _ = self.0.wait_for(|stop| *stop).await.map(drop);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn every_listener_hears_the_stop() {
        let (stop, mut first) = channel();
        let mut second = first.clone();
        let waiting = tokio::spawn(async move { second.stopped().await });
        stop.stop();
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("the waiting listener wakes")
            .expect("the listener task ran");
        tokio::time::timeout(Duration::from_secs(1), first.stopped())
            .await
            .expect("a listener that was not waiting hears it too");
    }

    #[tokio::test]
    async fn a_gone_server_counts_as_stopping() {
        let (stop, mut listener) = channel();
        drop(stop);
        tokio::time::timeout(Duration::from_secs(1), listener.stopped())
            .await
            .expect("a dropped trigger ends the wait");
    }
}
