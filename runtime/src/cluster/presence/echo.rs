//! This node's own heartbeat, heard back from NATS: the yardstick for every silence. A node that does not hear
//! itself although it kept sending is cut off; a node whose own heartbeat comes back late (its CPU saturated, its
//! NATS server slow) judges the others' silence by what it could hear, so that its own lag does not make it count
//! healthy nodes dead, and a lag in its own sending (its heartbeat task starved) does not make it count itself cut.

use std::time::Instant;

use super::Liveness;

/// When this node last heard itself, and how many heartbeats it sent since.
#[derive(Debug, Clone, Copy)]
pub struct Echo {
    heard: Instant,
    unheard_beats: u32,
}

impl Echo {
    /// A node that starts hearing itself `now`.
    pub fn new(now: Instant) -> Self {
        Echo {
            heard: now,
            unheard_beats: 0,
        }
    }

    /// When this node last heard itself.
    pub fn heard_at(&self) -> Instant {
        self.heard
    }

    /// A heartbeat went out.
    pub fn sent(&mut self) {
        self.unheard_beats = self.unheard_beats.saturating_add(1);
    }

    /// This node's heartbeat came back at `now`.
    pub fn heard(&mut self, now: Instant) {
        self.heard = now;
        self.unheard_beats = 0;
    }

    /// Whether this node is cut off at `now`: it has not heard itself for longer than the silence that makes the
    /// others count a node dead, although it sent at least as many heartbeats as fit in that silence (a node whose
    /// heartbeats did not even go out was stalled, not cut, and the others hear it again with its next one).
    pub fn cut_off(&self, now: Instant, liveness: &Liveness) -> bool {
        let beats_in_silence = (liveness.silence.as_millis()
            / liveness.heartbeat.as_millis().max(1))
        .clamp(1, u128::from(u32::MAX)) as u32;
        now.saturating_duration_since(self.heard) > liveness.silence
            && self.unheard_beats >= beats_in_silence
    }

    /// Up to when this node could hear the cluster: `now` while its own heartbeat comes back in time, else one
    /// heartbeat after it last heard itself. Another node is silent for as long as it was not heard before this.
    pub fn hearing_until(&self, now: Instant, liveness: &Liveness) -> Instant {
        now.min(self.heard + liveness.heartbeat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const LIVENESS: Liveness = Liveness {
        heartbeat: Duration::from_millis(1000),
        silence: Duration::from_millis(3000),
    };

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn a_node_that_keeps_sending_and_hears_nothing_is_cut_after_the_silence() {
        let start = Instant::now();
        let mut echo = Echo::new(start);
        for _ in 0..3 {
            echo.sent();
        }
        assert!(!echo.cut_off(start + ms(3000), &LIVENESS), "not before");
        assert!(echo.cut_off(start + ms(3001), &LIVENESS));
        echo.heard(start + ms(3100));
        assert!(!echo.cut_off(start + ms(3200), &LIVENESS), "back");
    }

    #[test]
    fn a_node_whose_heartbeats_did_not_go_out_was_stalled_not_cut() {
        let start = Instant::now();
        let mut echo = Echo::new(start);
        // A 4 s stall: the one heartbeat due meanwhile goes out at its end.
        echo.sent();
        assert!(!echo.cut_off(start + ms(4000), &LIVENESS));
        echo.sent();
        assert!(!echo.cut_off(start + ms(4500), &LIVENESS));
        echo.sent();
        assert!(
            echo.cut_off(start + ms(5000), &LIVENESS),
            "three heartbeats sent and none heard"
        );
    }

    #[test]
    fn others_are_judged_by_what_this_node_could_hear() {
        let start = Instant::now();
        let mut echo = Echo::new(start);
        assert_eq!(
            echo.hearing_until(start + ms(900), &LIVENESS),
            start + ms(900)
        );
        // Its own heartbeat is late: hearing stops one heartbeat after it was last heard.
        assert_eq!(
            echo.hearing_until(start + ms(4000), &LIVENESS),
            start + ms(1000)
        );
        echo.heard(start + ms(4100));
        assert_eq!(
            echo.hearing_until(start + ms(4200), &LIVENESS),
            start + ms(4200)
        );
    }
}
