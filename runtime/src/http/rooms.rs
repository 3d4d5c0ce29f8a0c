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
use palaver_handlers::{Error, Hub};
use warp::Reply;
use warp::reply::Response;

use super::accounts::{principal, principal_for_change};
use super::auth::Presented;
use super::body::decode;
use super::error::{error_response, json_error};
use crate::context::AppContext;

/// The header a non-member sends a private room's password in to read its history (never the query string, which
/// ends up in access logs).
pub const ROOM_PASSWORD_HEADER: &str = "x-room-password";

/// A room name from a path segment, percent-decoded (`general%20chat` → `general chat`).
pub fn room_name(segment: &str) -> Result<String, Box<Response>> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map(|name| name.into_owned())
        .map_err(|_| {
            Box::new(json_error(
                StatusCode::BAD_REQUEST,
                "room name is not valid UTF-8",
                "invalid_room_name",
                Some("name"),
            ))
        })
}

/// The authenticated caller and the room name a route's path names, or the error response to send.
async fn caller_and_room(
    ctx: &AppContext,
    presented: &Presented,
    segment: &str,
) -> Result<(palaver_handlers::model::Principal, String), Box<Response>> {
    let principal = principal(ctx, presented).await.map_err(Box::new)?;
    Ok((principal, room_name(segment)?))
}

/// As [`caller_and_room`], for a request that changes state (CSRF-checked when cookie-authenticated).
async fn changer_and_room(
    ctx: &AppContext,
    presented: &Presented,
    segment: &str,
) -> Result<(palaver_handlers::model::Principal, String), Box<Response>> {
    let principal = principal_for_change(ctx, presented)
        .await
        .map_err(Box::new)?;
    Ok((principal, room_name(segment)?))
}

/// `GET /api/rooms` → every room with its online count and whether the caller is a member.
pub async fn list(ctx: Arc<AppContext>, presented: Presented) -> Response {
    let principal = match principal(&ctx, &presented).await {
        Ok(principal) => principal,
        Err(response) => return response,
    };
    match list_rooms_for(ctx.as_ref(), &principal).await {
        Ok(rooms) => warp::reply::json(&rooms).into_response(),
        Err(err) => error_response(&err),
    }
}

/// `POST /api/rooms` → 201 with the room; the creator owns it and is its first member.
pub async fn create(
    ctx: Arc<AppContext>,
    presented: Presented,
    content_type: Option<String>,
    body: Bytes,
) -> Response {
    let principal = match principal_for_change(&ctx, &presented).await {
        Ok(principal) => principal,
        Err(response) => return response,
    };
    let request: CreateRoomRequest = match decode(content_type.as_deref(), &body) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    match create_room_for(ctx.as_ref(), &principal, &request).await {
        Ok(room) => {
            tracing::info!(user = %principal.user_id, room = ?room.name, "room created");
            let view = RoomView::of(&room, ctx.hub.online_users(room.id).len(), true);
            warp::reply::with_status(warp::reply::json(&view), StatusCode::CREATED).into_response()
        }
        Err(err) => error_response(&err),
    }
}

/// `DELETE /api/rooms/{name}` → 204; members are told and removed.
pub async fn delete(segment: String, ctx: Arc<AppContext>, presented: Presented) -> Response {
    let (principal, name) = match changer_and_room(&ctx, &presented, &segment).await {
        Ok(found) => found,
        Err(response) => return *response,
    };
    match delete_room_for(ctx.as_ref(), &principal, &name).await {
        Ok(()) => {
            tracing::info!(user = %principal.user_id, room = ?name, "room deleted");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(err) => error_response(&err),
    }
}

/// `GET /api/rooms/{name}/messages?limit=&before_seq=&…` → `{messages, next_before, has_more}`, newest first.
pub async fn messages(
    segment: String,
    ctx: Arc<AppContext>,
    presented: Presented,
    query: String,
    room_password: Option<String>,
) -> Response {
    let (principal, name) = match caller_and_room(&ctx, &presented, &segment).await {
        Ok(found) => found,
        Err(response) => return *response,
    };
    let params: HistoryParams = match serde_urlencoded::from_str(&query) {
        Ok(params) => params,
        Err(err) => {
            return error_response(&Error::Malformed(format!(
                "query string is not valid: {err}"
            )));
        }
    };
    match get_messages_for(
        ctx.as_ref(),
        &principal,
        &name,
        &params,
        room_password.as_deref(),
    )
    .await
    {
        Ok((_, page)) => warp::reply::json(&crate::ws::codec::history_body(&page)).into_response(),
        Err(err) => error_response(&err),
    }
}

/// `GET /api/rooms/{name}/members` → `[{username, online}]`, for members.
pub async fn members(segment: String, ctx: Arc<AppContext>, presented: Presented) -> Response {
    let (principal, name) = match caller_and_room(&ctx, &presented, &segment).await {
        Ok(found) => found,
        Err(response) => return *response,
    };
    match list_members_for(ctx.as_ref(), &principal, &name).await {
        Ok((_, members)) => warp::reply::json(&members).into_response(),
        Err(err) => error_response(&err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_in_paths_are_percent_decoded() {
        assert_eq!(room_name("general%20chat").unwrap(), "general chat");
        assert_eq!(room_name("caf%C3%A9").unwrap(), "café");
        assert_eq!(
            room_name("%FF").unwrap_err().status(),
            StatusCode::BAD_REQUEST
        );
    }
}
