//! One task per WebSocket: it reads commands and runs them, while a writer task drains the connection's bounded
//! queue into the socket (coalescing queued frames into one flush). The session ends on close, error, missed pongs,
//! a full queue (1013), an expired token (1008), an oversized frame (1009), bad UTF-8 (1007) or shutdown (1001);
//! whatever ends it, the hub forgets the connection and the rooms hear that the user left.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use std::future::Future;
use std::pin::Pin;

use futures_util::stream::FuturesOrdered;
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use palaver_handlers::actions::disconnect::disconnect;
use palaver_handlers::event::Session;
use palaver_handlers::model::{Limit, Principal, SecurityEvent};
use palaver_handlers::{Command, Decoded, Error, Hub, Outcome};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::CapacityError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use crate::audit::Actor;
use crate::close::Close;
use crate::context::AppContext;
use crate::hub::{ConnectionHandle, Kick};
use crate::ratelimit::Decision;
use crate::render::Codec;
use crate::shutdown::Shutdown;
use crate::ws::control::{Control, ControlSender, Next};
use palaver_handlers::event::Reply;

/// The socket type sessions run on.
pub type Socket = WebSocketStream<TokioIo<Upgraded>>;

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// How long one write may take before the client counts as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The close frame for `close`.
fn frame_of(close: Close) -> CloseFrame {
    CloseFrame {
        code: CloseCode::from(close.code()),
        reason: close.reason().into(),
    }
}

/// Runs one WebSocket until it ends. `_open` is held so that shutdown waits for this session.
pub async fn run(
    ctx: Arc<AppContext>,
    socket: Socket,
    principal: Principal,
    codec: Codec,
    shutdown: Shutdown,
    _open: mpsc::Sender<()>,
) {
    let conn = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
    let (queue, frames) = mpsc::channel(ctx.settings.outbound_queue_frames);
    let replies = queue.clone();
    let kick = Arc::new(Kick::default());
    ctx.hub.register(
        conn,
        ConnectionHandle {
            user_id: principal.user_id,
            renderer: codec.renderer(),
            queue,
            token_id: principal.token_id.clone(),
            kick: kick.clone(),
        },
    );
    ctx.metrics.handshakes.inc();
    ctx.metrics.connections_open.inc();
    tracing::info!(conn, user = %principal.user_id, ?codec, "websocket opened");
    let session = Session { conn, principal };
    let (sink, stream) = socket.split();
    let (control, control_rx) = Control::pair();
    let writer = tokio::spawn(write(sink, frames, control_rx));

    let link = Link {
        session,
        codec,
        replies,
        control,
        kick,
    };
    let reason = read(&ctx, &link, stream, shutdown).await;
    let Link {
        session, control, ..
    } = link;

    // Counted and audited when decided, not once the writer is done: a client too slow to read may take the whole
    // write timeout to hear the close.
    if reason == Some(Close::SlowConsumer) {
        ctx.metrics.slow_consumer_closes.inc();
    }
    if let Some(close) = reason.filter(|close| close.is_audited()) {
        let event = SecurityEvent::ConnectionClosed {
            code: close.code(),
            reason: close.reason().to_owned(),
        };
        ctx.guard.audit(&Actor::of(&session.principal), event);
    }
    disconnect(ctx.as_ref(), &session);
    // Dropping the hub's sender ends the writer once it has written what was queued.
    ctx.hub.unregister(conn);
    control.close(reason.map(frame_of));
    drop(control);
    let _ = tokio::time::timeout(WRITE_TIMEOUT, writer).await;
    ctx.metrics.connections_open.dec();
    tracing::info!(conn, reason = ?reason.map(Close::code), "websocket closed");
}

/// What the reading half answers through and can be stopped by.
struct Link {
    session: Session,
    codec: Codec,
    /// The session's own sender: replies wait for room in the queue (back-pressure), where broadcasts from the hub
    /// never wait and overflow instead.
    replies: mpsc::Sender<Utf8Bytes>,
    /// Pings and the final close, to the writer.
    control: ControlSender,
    kick: Arc<Kick>,
}

/// The reading half: commands in, replies queued; pings, deadlines and alarms. Returns why the server closes, or
/// `None` when the client went away.
async fn read(
    ctx: &Arc<AppContext>,
    link: &Link,
    mut stream: futures_util::stream::SplitStream<Socket>,
    mut shutdown: Shutdown,
) -> Option<Close> {
    let session = &link.session;
    let ping_every = Duration::from_secs(ctx.settings.ping_interval_secs);
    let silence_limit = Duration::from_secs(ctx.settings.pong_timeout_secs);
    let mut pings = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
    let mut last_heard = Instant::now();
    let token_left = session.principal.expires_at - time::OffsetDateTime::now_utc();
    let token_expiry = tokio::time::sleep(token_left.try_into().unwrap_or(Duration::ZERO));
    tokio::pin!(token_expiry);
    let mut in_flight = InFlight::new();
    loop {
        tokio::select! {
            Some((id, replies)) = in_flight.next(), if !in_flight.is_empty() => {
                queue_replies(ctx, link, id, replies).await;
            }
            incoming = stream.next(), if in_flight.len() < MAX_IN_FLIGHT => {
                last_heard = Instant::now();
                match incoming {
                    Some(Ok(Message::Text(frame))) => {
                        ctx.metrics.frames_in.inc();
                        // Boxed: a command's future (the largest action's state) would otherwise be part of every
                        // idle connection's session, kilobytes each; this way it exists only while a command runs.
                        let handled = Box::pin(handle(ctx, link, &mut in_flight, frame.as_str()));
                        if let Flood::Disconnect = handled.await {
                            return Some(Close::RateLimitAbuse);
                        }
                    }
                    Some(Ok(Message::Binary(_))) => answer(ctx, link, &mut in_flight, None, vec![Reply::Error(Error::InvalidMessage)]).await,
                    Some(Ok(Message::Close(_))) | None => return None,
                    Some(Ok(_)) => {}
                    Some(Err(WsError::Capacity(CapacityError::MessageTooLong { .. }))) => {
                        return Some(Close::FrameTooLarge);
                    }
                    Some(Err(WsError::Utf8(_))) => return Some(Close::InvalidUtf8),
                    // Reserved bits (compression nobody agreed to), bad opcodes, unmasked frames: say why.
                    Some(Err(WsError::Protocol(err))) => {
                        tracing::debug!(conn = session.conn, error = %err, "websocket protocol error");
                        return Some(Close::ProtocolError);
                    }
                    Some(Err(err)) => {
                        tracing::debug!(conn = session.conn, error = %err, "websocket read failed");
                        return None;
                    }
                }
            }
            _ = pings.tick() => {
                if last_heard.elapsed() >= silence_limit {
                    return Some(Close::NoPong);
                }
                if !link.control.ping() {
                    return Some(Close::SlowConsumer);
                }
            }
            close = link.kick.kicked() => return Some(close),
            _ = &mut token_expiry => return Some(Close::TokenExpired),
            _ = shutdown.stopped() => return Some(Close::ShuttingDown),
        }
    }
}

/// The most posts one connection may have waiting for their commit; past it, the session reads no further commands
/// until the oldest is acknowledged (back-pressure on a fast sender).
const MAX_IN_FLIGHT: usize = 64;

/// Posts of this connection waiting for their commit, yielding their replies in the order they were sent.
type InFlight = FuturesOrdered<Pin<Box<dyn Future<Output = (Option<String>, Vec<Reply>)> + Send>>>;

/// Whether a user keeps flooding past the limit.
enum Flood {
    Fine,
    Disconnect,
}

/// Runs one command (or refuses it past the user's rate limit) and queues its replies behind whatever the connection
/// already has queued.
async fn handle(
    ctx: &Arc<AppContext>,
    link: &Link,
    in_flight: &mut InFlight,
    frame: &str,
) -> Flood {
    let session = &link.session;
    let user = session.principal.user_id;
    let limits = &ctx.socket_limits;
    let now = std::time::Instant::now();
    if let Decision::Limited { .. } = limits.messages.check(&user, now) {
        ctx.guard
            .refused(Limit::WsMessages, &Actor::of(&session.principal));
        if let Decision::Limited { .. } = limits.floods.check(&user, now) {
            tracing::warn!(conn = session.conn, %user, "disconnecting a user who keeps flooding");
            return Flood::Disconnect;
        }
        let refused = vec![Reply::Error(Error::RateLimited)];
        answer(ctx, link, in_flight, Command::id_of(frame), refused).await;
        return Flood::Fine;
    }
    let Decoded { id, command } = Command::decode(frame);
    let command = match command {
        Ok(command) => command,
        Err(err) => {
            answer(ctx, link, in_flight, id, vec![Reply::Error(err)]).await;
            return Flood::Fine;
        }
    };
    let name = command.name();
    match command.run(ctx.as_ref(), session).await {
        Ok(Outcome::Pending(pending)) => {
            let session = session.clone();
            in_flight.push_back(Box::pin(async move {
                let replies = pending
                    .await
                    .unwrap_or_else(|err| vec![failure(&session, name, err)]);
                (id, replies)
            }));
        }
        Ok(Outcome::Done(replies)) => answer(ctx, link, in_flight, id, replies).await,
        Err(err) => answer(ctx, link, in_flight, id, vec![failure(session, name, err)]).await,
    }
    Flood::Fine
}

/// The reply for a failed command; what the client must not see is logged.
fn failure(session: &Session, command: &str, err: Error) -> Reply {
    if let Some(detail) = err.log_detail() {
        tracing::error!(conn = session.conn, command, detail, "command failed");
    }
    Reply::Error(err)
}

/// Queues a command's replies after the acks of every post sent before it, so replies keep the commands' order.
async fn answer(
    ctx: &Arc<AppContext>,
    link: &Link,
    in_flight: &mut InFlight,
    id: Option<String>,
    replies: Vec<Reply>,
) {
    while let Some((earlier_id, earlier)) = in_flight.next().await {
        queue_replies(ctx, link, earlier_id, earlier).await;
    }
    queue_replies(ctx, link, id, replies).await;
}

/// Queues replies in order, waiting for room when the queue is full; at a [`Reply::CaughtUp`] (the end of a replay)
/// the events the hub held for the room are released behind the replayed messages.
async fn queue_replies(
    ctx: &Arc<AppContext>,
    link: &Link,
    id: Option<String>,
    replies: Vec<Reply>,
) {
    let conn = link.session.conn;
    let prefixed = ctx.hub.joined_count(conn) > 1;
    for reply in replies {
        if let Reply::CaughtUp {
            room_id,
            through_seq,
        } = reply
        {
            ctx.hub.release(conn, room_id, through_seq);
            continue;
        }
        for frame in link.codec.reply_frames(id.as_deref(), &reply, prefixed) {
            if link.replies.send(Utf8Bytes::from(frame)).await.is_err() {
                return;
            }
            ctx.metrics.frames_out.inc();
        }
    }
}

/// The writing half: drains the queue, coalescing whatever is already waiting into one flush; control frames
/// (pings, the final close) come through their own slot.
async fn write(
    mut sink: futures_util::stream::SplitSink<Socket, Message>,
    mut frames: mpsc::Receiver<Utf8Bytes>,
    control: Arc<Control>,
) {
    let mut frames_open = true;
    loop {
        let first = tokio::select! {
            biased;
            next = control.next() => match next {
                Next::Close(frame) => {
                    let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Close(frame))).await;
                    return;
                }
                Next::Ping => Message::Ping(Default::default()),
            },
            frame = frames.recv(), if frames_open => match frame {
                Some(frame) => Message::Text(frame),
                None => { frames_open = false; continue; }
            },
        };
        let mut batch = vec![first];
        while let Ok(frame) = frames.try_recv() {
            batch.push(Message::Text(frame));
        }
        let written = tokio::time::timeout(WRITE_TIMEOUT, async {
            for message in batch {
                sink.feed(message).await?;
            }
            sink.flush().await
        })
        .await;
        if !matches!(written, Ok(Ok(()))) {
            return;
        }
    }
}
