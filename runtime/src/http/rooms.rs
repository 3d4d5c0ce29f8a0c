//! The room routes of PROTOCOL §1: list, create, delete, history and members, over the same handler cores as the
//! WebSocket commands.

use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use palaver_handlers::actions::create_room::{CreateRoomRequest, create_room_for};
use palaver_handlers::actions::delete_room::delete_room_for;
use palaver_handlers::actions::get_messages::{HistoryParams, get_messages_for};
use palaver_handlers::actions::list_members::list_members_for;
use palaver_handlers::actions::list_rooms::list_rooms_for;
use palaver_handlers::event::RoomView;
use palaver_handlers::{Error, Field};
use warp::Reply;
use warp::reply::Response;

use super::body::decode;
use super::respond;
use crate::auth::{self, Presented};
use crate::context::AppContext;
use crate::render::json::history_body;

/// The header a non-member sends a private room's password in to read its history (never the query string, which
/// ends up in access logs).
pub const ROOM_PASSWORD_HEADER: &str = "x-room-password";

/// A room name from a path segment, percent-decoded (`general%20chat` → `general chat`).
pub fn room_name(segment: &str) -> Result<String, Error> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map(|name| name.into_owned())
        .map_err(|_| Error::invalid(Field::RoomName, "room name is not valid UTF-8"))
}

/// `GET /api/rooms` → every room with its online count and whether the caller is a member.
pub async fn list(ctx: Arc<AppContext>, presented: Presented) -> Response {
    respond(
        async {
            let principal = auth::reader(&ctx, &presented).await?;
            let rooms = list_rooms_for(ctx.as_ref(), &principal).await?;
            Ok(warp::reply::json(&rooms).into_response())
        }
        .await,
    )
}

/// `POST /api/rooms` → 201 with the room; the creator owns it and is its first member.
pub async fn create(
    ctx: Arc<AppContext>,
    presented: Presented,
    content_type: Option<String>,
    body: Bytes,
) -> Response {
    respond(
        async {
            let principal = auth::changer(&ctx, &presented).await?;
            let request: CreateRoomRequest = decode(content_type.as_deref(), &body)?;
            let room = create_room_for(ctx.as_ref(), &principal, &request).await?;
            tracing::info!(user = %principal.user_id, room = ?room.name, "room created");
            let view = RoomView::of(&room, ctx.presence.online_users(room.id).len(), true)
                .with_read_state(0, 0);
            let created = warp::reply::with_status(warp::reply::json(&view), StatusCode::CREATED);
            Ok(created.into_response())
        }
        .await,
    )
}

/// `DELETE /api/rooms/{name}` → 204; members are told and removed.
pub async fn delete(segment: String, ctx: Arc<AppContext>, presented: Presented) -> Response {
    respond(
        async {
            let principal = auth::changer(&ctx, &presented).await?;
            let name = room_name(&segment)?;
            delete_room_for(ctx.as_ref(), &principal, &name).await?;
            tracing::info!(user = %principal.user_id, room = ?name, "room deleted");
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        .await,
    )
}

/// `GET /api/rooms/{name}/messages?limit=&before_seq=&…` → `{messages, next_before, has_more}`, newest first.
pub async fn messages(
    segment: String,
    ctx: Arc<AppContext>,
    presented: Presented,
    query: String,
    room_password: Option<String>,
) -> Response {
    respond(
        async {
            let principal = auth::reader(&ctx, &presented).await?;
            let name = room_name(&segment)?;
            let params: HistoryParams = serde_urlencoded::from_str(&query)
                .map_err(|err| Error::Malformed(format!("query string is not valid: {err}")))?;
            let password = room_password.as_deref();
            let (_, page) =
                get_messages_for(ctx.as_ref(), &principal, &name, &params, password).await?;
            Ok(warp::reply::json(&history_body(&page)).into_response())
        }
        .await,
    )
}

/// `GET /api/rooms/{name}/members` → `[{username, online}]`, for members.
pub async fn members(segment: String, ctx: Arc<AppContext>, presented: Presented) -> Response {
    respond(
        async {
            let principal = auth::reader(&ctx, &presented).await?;
            let name = room_name(&segment)?;
            let (_, members) = list_members_for(ctx.as_ref(), &principal, &name).await?;
            Ok(warp::reply::json(&members).into_response())
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_in_paths_are_percent_decoded() {
        assert_eq!(room_name("general%20chat").unwrap(), "general chat");
        assert_eq!(room_name("caf%C3%A9").unwrap(), "café");
        let err = room_name("%FF").unwrap_err();
        assert_eq!(
            (err.code(), err.field(), err.to_string().as_str()),
            (
                "invalid_room_name",
                Some("name"),
                "room name is not valid UTF-8"
            )
        );
    }
}
