//! How the hub turns an event into a frame without knowing any wire format: each connection carries the
//! [`Render`] of its codec, and [`Rendered`] renders an event at most once per renderer and prefix variant, so
//! the same bytes are queued on every recipient with no allocation per recipient.

use palaver_handlers::event::Broadcast;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// Renders room events for one wire format.
pub trait Render: Send + Sync {
    /// The frame for `broadcast`; `prefixed` when the connection has joined several rooms.
    fn event(&self, broadcast: &Broadcast, prefixed: bool) -> String;

    /// Whether the frame depends on `prefixed` at all (when it does not, both variants share one rendering).
    fn prefixes(&self) -> bool;
}

/// How many (renderer, prefix variant) frames one event keeps: both variants of two codecs.
const SLOTS: usize = 4;

/// The frames already rendered for one event, keyed by renderer and prefix variant; kept on the stack.
#[derive(Default)]
pub struct Rendered {
    /// (renderer's address, prefixed, frame).
    frames: [Option<(usize, bool, Utf8Bytes)>; SLOTS],
}

impl Rendered {
    /// The frame for `broadcast` in `renderer`'s format, rendered on first use (and every time, past the slots a
    /// deployment with more formats than two would need).
    pub fn get(
        &mut self,
        renderer: &dyn Render,
        broadcast: &Broadcast,
        prefixed: bool,
    ) -> Utf8Bytes {
        // Renderers are statics: their address is their identity.
        let key = std::ptr::from_ref(renderer).cast::<()>() as usize;
        let prefixed = prefixed && renderer.prefixes();
        let mut free = None;
        for (index, slot) in self.frames.iter().enumerate() {
            match slot {
                Some((other, variant, frame)) if *other == key && *variant == prefixed => {
                    return frame.clone();
                }
                None if free.is_none() => free = Some(index),
                _ => {}
            }
        }
        let frame = Utf8Bytes::from(renderer.event(broadcast, prefixed));
        if let Some(index) = free {
            self.frames[index] = Some((key, prefixed, frame.clone()));
        }
        frame
    }
}
