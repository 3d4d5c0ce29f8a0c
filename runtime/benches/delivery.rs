//! Allocations and time per delivered message in the hub's fan-out: one stored chat message published to a room of
//! `members` subscribed connections. The hub renders each event once per codec and queues the same shared frame on
//! every connection, so the allocations of one publish should not grow with the room; this shows whether they do.
//!
//! `cargo bench -p palaver-runtime --bench delivery` prints, per room size, the time of one publish (with the
//! dequeue a connection's writer does) and the allocations it made (`alloc` rows: count and bytes per publish).

use std::sync::Arc;

use divan::{AllocProfiler, Bencher};
use palaver_handlers::Hub;
use palaver_handlers::event::{Broadcast, RoomEvent};
use palaver_handlers::model::LogEntry;
use palaver_runtime::hub::{ConnectionHandle, Kick, LocalHub};
use palaver_runtime::render::Codec;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use uuid::Uuid;

#[global_allocator]
static ALLOC: AllocProfiler = AllocProfiler::system();

fn main() {
    divan::main();
}

/// A hub with `members` connections (each its own user) subscribed to one room, half of them speaking JSON.
fn room_of(members: usize) -> (LocalHub, Uuid, Vec<mpsc::Receiver<Utf8Bytes>>) {
    let hub = LocalHub::new();
    let room_id = Uuid::now_v7();
    let receivers = (0..members)
        .map(|n| {
            let (queue, frames) = mpsc::channel(1024);
            let conn = n as u64;
            let user_id = Uuid::now_v7();
            let codec = if n % 2 == 0 { Codec::Json } else { Codec::Text };
            let handle = ConnectionHandle {
                user_id,
                token_id: format!("token-{n}"),
                renderer: codec.renderer(),
                queue,
                kick: Arc::new(Kick::default()),
            };
            hub.register(conn, handle);
            hub.subscribe(conn, user_id, room_id, "general");
            frames
        })
        .collect();
    (hub, room_id, receivers)
}

/// A 100-byte chat message as the group-commit writer publishes it after its commit.
fn message(room_id: Uuid, seq: i64) -> Broadcast {
    let now = OffsetDateTime::now_utc();
    Broadcast {
        room_id,
        room: "general".into(),
        at: now,
        event: RoomEvent::Entry(LogEntry {
            id: Uuid::now_v7(),
            room_id,
            seq,
            user_id: Uuid::nil(),
            username: "john_doe".into(),
            body: palaver_handlers::model::Body::Message(
                palaver_handlers::model::MessageBody::posted("x".repeat(100), None),
            ),
            client_msg_id: None,
            created_at: now,
        }),
        skip_user: None,
    }
}

#[divan::bench(args = [1, 10, 100, 1000])]
fn publish(bencher: Bencher, members: usize) {
    let (hub, room_id, mut receivers) = room_of(members);
    let mut seq = 0;
    bencher
        .counter(divan::counter::ItemsCount::new(members))
        .with_inputs(|| {
            seq += 1;
            message(room_id, seq)
        })
        .bench_local_values(|broadcast| {
            hub.publish(broadcast);
            // What each connection's writer does next: take the frame off its queue.
            for frames in &mut receivers {
                drop(frames.try_recv());
            }
        });
}
