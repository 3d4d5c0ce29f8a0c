//! Asking a connection's session to end, from wherever the reason is found (the hub when its queue overflows, a
//! logout when its token is revoked); the session awaits the request beside its reads.

use std::sync::atomic::{AtomicU8, Ordering};

use tokio::sync::Notify;

use crate::close::Close;

/// A request to a connection's session to end, with the close to send; the first request wins.
#[derive(Default)]
pub struct Kick {
    notify: Notify,
    /// The requested close's index plus one; zero until a request is made.
    close: AtomicU8,
}

impl Kick {
    /// Asks the session to close with `close`.
    pub fn kick(&self, close: Close) {
        let _ = self
            .close
            .compare_exchange(0, close as u8 + 1, Ordering::SeqCst, Ordering::SeqCst);
        self.notify.notify_one();
    }

    /// The close asked for, if the session has been asked to end.
    pub fn requested(&self) -> Option<Close> {
        let requested = self.close.load(Ordering::SeqCst);
        requested.checked_sub(1).and_then(Close::from_index)
    }

    /// Resolves with the close to send once the session has been asked to end.
    pub async fn kicked(&self) -> Close {
        loop {
            self.notify.notified().await;
            if let Some(close) = self.requested() {
                return close;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn the_first_request_wins() {
        let kick = Kick::default();
        assert_eq!(kick.requested(), None);
        kick.kick(Close::TokenRevoked);
        kick.kick(Close::SlowConsumer);
        let close = tokio::time::timeout(Duration::from_secs(1), kick.kicked())
            .await
            .expect("a kick is heard");
        assert_eq!(close, Close::TokenRevoked);
    }
}
