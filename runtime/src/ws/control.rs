//! The control frames a session's reader hands its writer: a ping now and then, and the final close. A channel would
//! allocate a block of 32 message slots per connection up front (2.3 KB of an idle connection's 14) for these two;
//! this is one small lock and a `Notify`.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

/// What the writer is asked to send next.
#[derive(Debug, PartialEq)]
pub enum Next {
    Ping,
    /// The last frame: send it (if any) and stop.
    Close(Option<CloseFrame>),
}

#[derive(Default)]
struct Pending {
    ping: bool,
    close: Option<Option<CloseFrame>>,
}

/// The shared slot between one reader and one writer.
#[derive(Default)]
pub struct Control {
    pending: Mutex<Pending>,
    wake: Notify,
}

/// The reader's end. Dropping it (the session ending, even by a panic) asks the writer to stop.
pub struct ControlSender(Arc<Control>);

impl Control {
    /// A new slot: the reader's end and the writer's.
    pub fn pair() -> (ControlSender, Arc<Control>) {
        let control = Arc::new(Control::default());
        (ControlSender(control.clone()), control)
    }

    /// Waits for the next control frame; a close comes before a ping. Cancel-safe: nothing is taken unless returned.
    pub async fn next(&self) -> Next {
        loop {
            if let Some(next) = self.take() {
                return next;
            }
            // A request made since `take` left a permit: this returns at once.
            self.wake.notified().await;
        }
    }

    fn take(&self) -> Option<Next> {
        let mut pending = self.lock();
        if let Some(close) = pending.close.take() {
            return Some(Next::Close(close));
        }
        if std::mem::take(&mut pending.ping) {
            return Some(Next::Ping);
        }
        None
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl ControlSender {
    /// Asks the writer to ping; false when the last ping is still unsent (the writer is stuck or gone).
    pub fn ping(&self) -> bool {
        let mut pending = self.0.lock();
        if pending.ping {
            return false;
        }
        pending.ping = true;
        drop(pending);
        self.0.wake.notify_one();
        true
    }

    /// Asks the writer to send `frame` as its last frame and stop. Only the first close counts.
    pub fn close(&self, frame: Option<CloseFrame>) {
        let mut pending = self.0.lock();
        if pending.close.is_none() {
            pending.close = Some(frame);
        }
        drop(pending);
        self.0.wake.notify_one();
    }
}

impl Drop for ControlSender {
    fn drop(&mut self) {
        self.close(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    fn going_away() -> Option<CloseFrame> {
        Some(CloseFrame {
            code: CloseCode::Away,
            reason: "bye".into(),
        })
    }

    #[tokio::test]
    async fn a_ping_is_sent_once_and_a_second_waits_for_it() {
        let (sender, control) = Control::pair();
        assert!(sender.ping());
        assert!(!sender.ping(), "the first ping is still unsent");
        assert_eq!(control.next().await, Next::Ping);
        assert!(sender.ping());
    }

    #[tokio::test]
    async fn a_close_wins_over_a_ping_and_only_the_first_counts() {
        let (sender, control) = Control::pair();
        sender.ping();
        sender.close(going_away());
        sender.close(None);
        assert_eq!(control.next().await, Next::Close(going_away()));
    }

    #[tokio::test]
    async fn a_waiting_writer_is_woken() {
        let (sender, control) = Control::pair();
        let writer = tokio::spawn(async move { control.next().await });
        tokio::task::yield_now().await;
        sender.ping();
        assert_eq!(writer.await.unwrap(), Next::Ping);
    }

    #[tokio::test]
    async fn dropping_the_reader_end_stops_the_writer() {
        let (sender, control) = Control::pair();
        drop(sender);
        assert_eq!(control.next().await, Next::Close(None));
    }
}
