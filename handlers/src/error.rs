//! Every error a client can see, in one place: [`Error`] has a variant for each failure, of the chat rules and of
//! the transports alike (a missing CSRF token, a foreign origin, a bad handshake, an unknown route), and each knows
//! its stable `code`, its kind (which the runtime maps to an HTTP status or a WebSocket error frame) and its literal
//! sentence. Also the failures of the parts a handler calls ([`StoreError`], [`CredentialError`]) that turn into it.

use std::time::Duration;

/// What sort of failure an [`Error`] is; the runtime turns each into an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or a field breaks a rule (400).
    Invalid,
    /// No, or no valid, credentials (401).
    Unauthenticated,
    /// Authenticated but not allowed (403).
    Forbidden,
    /// The thing asked for does not exist (404).
    NotFound,
    /// The request clashes with existing state (409).
    Conflict,
    /// The request or a message is over a size limit (413).
    TooLarge,
    /// The method is not the route's (405).
    MethodNotAllowed,
    /// A request body without a `Content-Length` (411).
    LengthRequired,
    /// A request body that is not JSON (415).
    UnsupportedMediaType,
    /// A WebSocket handshake of a version the server does not speak (426).
    UpgradeRequired,
    /// Too many requests (429).
    RateLimited,
    /// A dependency (the database) does not answer; retrying later may work (503).
    Unavailable,
    /// A bug or an unexpected failure; details are logged, never sent (500).
    Internal,
}

/// Which field of a request broke a validation rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Username,
    Email,
    Password,
    Login,
    RoomName,
    RoomPassword,
    Content,
    Emoji,
    Query,
}

impl Field {
    /// The field's name as it appears in the request JSON.
    pub fn name(self) -> &'static str {
        match self {
            Field::Username => "username",
            Field::Email => "email",
            Field::Password => "password",
            Field::Login => "login",
            Field::RoomName => "name",
            Field::RoomPassword => "password",
            Field::Content => "content",
            Field::Emoji => "emoji",
            Field::Query => "query",
        }
    }
}

/// Why a token was refused. Kept apart so the audit log can say which, while clients see one of a few codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRejection {
    /// Not a JWT, or a JWT whose claims do not parse.
    Malformed,
    /// Signed with another key, or with an algorithm other than the configured one (including `none`).
    BadSignature,
    /// Past its `exp`.
    Expired,
    /// Before its `nbf`.
    NotYetValid,
    /// Issued by someone else, or for another audience.
    WrongIssuerOrAudience,
    /// Revoked by a logout.
    Revoked,
    /// Its user no longer exists.
    UnknownUser,
}

impl TokenRejection {
    /// A short snake_case name for logs and the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenRejection::Malformed => "malformed",
            TokenRejection::BadSignature => "bad_signature",
            TokenRejection::Expired => "expired",
            TokenRejection::NotYetValid => "not_yet_valid",
            TokenRejection::WrongIssuerOrAudience => "wrong_issuer_or_audience",
            TokenRejection::Revoked => "revoked",
            TokenRejection::UnknownUser => "unknown_user",
        }
    }
}

/// A client-facing failure of a handler.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A field breaks a rule of PROTOCOL §7; `reason` is a complete sentence naming the field.
    #[error("{reason}")]
    Validation { field: Field, reason: String },
    /// The request body or frame is not what the action expects (bad JSON, a missing field).
    #[error("{0}")]
    Malformed(String),
    /// Registration with a username that is taken (case-insensitively).
    #[error("username is already taken")]
    UsernameTaken,
    /// Registration with an email that is registered.
    #[error("email is already registered")]
    EmailTaken,
    /// Login failed; the same answer whether the account exists or not.
    #[error("invalid username or password")]
    InvalidCredentials,
    /// No credentials at all (the seed's literal text).
    #[error("Authorization header with Bearer token required")]
    MissingCredentials,
    /// A token that is not acceptable, for the reason given.
    #[error("{}", token_text(*.0))]
    InvalidToken(TokenRejection),
    /// The named room does not exist (PROTOCOL §4 literal).
    #[error("room does not exist")]
    RoomNotFound,
    /// A private room's password did not match (PROTOCOL §4 literal).
    #[error("incorrect room password")]
    BadRoomPassword,
    /// A room with that name (case-insensitively) exists.
    #[error("room already exists")]
    RoomExists,
    /// Only the owner may delete a room.
    #[error("only the room owner can delete it")]
    NotOwner,
    /// The command names a room the connection has not joined, or names none while several are joined.
    #[error("you are not in that room")]
    NotInRoom,
    /// The command needs a room and the connection has joined several: it must name one.
    #[error("you are in several rooms; name the room")]
    RoomRequired,
    /// The user owns as many rooms as allowed.
    #[error("you already own {0} rooms, the most allowed")]
    RoomQuota(u64),
    /// No message with this seq in the room (edits, deletions and reactions are entries, not messages).
    #[error("there is no message {seq} in this room")]
    MessageNotFound { seq: i64 },
    /// The message was deleted: it cannot be edited, reacted to or replied to.
    #[error("message {seq} was deleted")]
    MessageDeleted { seq: i64 },
    /// Only a message's author may edit it.
    #[error("only its author can edit a message")]
    NotAuthor,
    /// Only a message's author or the room's owner may delete it.
    #[error("only its author or the room owner can delete a message")]
    NotAuthorOrOwner,
    /// The message is older than the configured edit window.
    #[error("messages can only be edited within {secs} seconds of posting")]
    EditWindowClosed { secs: u64 },
    /// The message carries the most distinct reactions allowed.
    #[error("a message can carry at most {max} different reactions")]
    TooManyReactions { max: usize },
    /// An unreact of a reaction the user has not made.
    #[error("you have not reacted to that message with that emoji")]
    ReactionNotFound,
    /// A moderation command on someone the sender's role does not reach.
    #[error("you may not moderate that member")]
    MayNotModerate,
    /// The named user is not a member of the room.
    #[error("that user is not a member of this room")]
    NotAMember,
    /// A role change the user's own role does not allow (PROTOCOL §3.7).
    #[error("you may not give that role to that member")]
    RoleNotAllowed,
    /// Only the owner hands the room on.
    #[error("only the room owner can transfer it")]
    NotOwnerToTransfer,
    /// No account has this username.
    #[error("there is no user called that")]
    UserNotFound,
    /// A direct conversation needs two people.
    #[error("you cannot open a direct conversation with yourself")]
    DirectWithYourself,
    /// Blocking oneself means nothing.
    #[error("you cannot block yourself")]
    BlockYourself,
    /// The other person refuses direct messages from this user.
    #[error("this user does not accept direct messages from you")]
    Blocked,
    /// A direct room lasts as long as its two members.
    #[error("a direct conversation cannot be deleted")]
    DirectRoom,
    /// A frame that is not a command: bad JSON, unknown type, missing or mistyped field.
    #[error("invalid message format")]
    InvalidMessage,
    /// Message content over the configured limit; the text protocol renders the seed's exact sentence.
    #[error("message too large (max {max} bytes)")]
    MessageTooLarge { max: usize },
    /// Too many requests or messages in the window.
    #[error("rate limit exceeded")]
    RateLimited,
    /// Too many HTTP requests from this address (or registrations, or failed logins); the client may retry after
    /// `retry_after`.
    #[error("too many requests; retry later")]
    TooManyRequests { retry_after: Duration },
    /// A user or an address holds as many WebSocket connections as allowed.
    #[error("{}", connection_cap_text(*.0))]
    TooManyConnections(ConnectionCap),
    /// A cookie-authenticated change without this session's CSRF token.
    #[error("this request needs the session's CSRF token in X-CSRF-Token")]
    CsrfFailed,
    /// A WebSocket opened from a page of an origin that is not allowed.
    #[error("this origin may not open a WebSocket")]
    ForbiddenOrigin,
    /// A WebSocket ticket that is unknown, used or expired.
    #[error("the ticket is invalid, used or expired")]
    InvalidTicket,
    /// A WebSocket upgrade request that breaks RFC 6455 (no upgrade headers, a bad key).
    #[error("not a valid WebSocket handshake")]
    BadHandshake,
    /// A WebSocket upgrade of a version other than 13.
    #[error("WebSocket version 13 is required")]
    WrongWebSocketVersion,
    /// `/ws` asked with another method than GET.
    #[error("use GET to open a WebSocket")]
    WebSocketNeedsGet,
    /// A web client file asked with another method than GET or HEAD.
    #[error("use GET for the web client's files")]
    WebClientNeedsGet,
    /// A known route asked with a method it does not take.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// No route at this path.
    #[error("no such route")]
    NoSuchRoute,
    /// A request body over the configured limit.
    #[error("request body is too large")]
    PayloadTooLarge,
    /// A request body without a `Content-Length` header.
    #[error("a Content-Length header is required")]
    LengthRequired,
    /// A request body whose content type is not JSON.
    #[error("request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    /// A request the router could not make sense of.
    #[error("the request could not be understood")]
    BadRequest,
    /// `/metrics` without the configured bearer token.
    #[error("a metrics token is required")]
    MetricsTokenRequired,
    /// The database did not answer; the detail is for the log only.
    #[error("the service is temporarily unavailable, please retry")]
    Unavailable(String),
    /// An unexpected failure; the detail is for the log only.
    #[error("internal error")]
    Internal(String),
}

/// Which cap refused a WebSocket connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionCap {
    /// The user's connections (`ws_connections_per_user`).
    PerUser,
    /// The client address's connections (`ws_connections_per_ip`).
    PerAddress,
}

fn connection_cap_text(cap: ConnectionCap) -> &'static str {
    match cap {
        ConnectionCap::PerUser => "too many open connections for this user",
        ConnectionCap::PerAddress => "too many open connections from this address",
    }
}

fn token_text(rejection: TokenRejection) -> &'static str {
    match rejection {
        TokenRejection::Expired => "the token has expired",
        TokenRejection::Revoked => "the token has been revoked",
        _ => "the token is invalid",
    }
}

impl Error {
    /// A validation failure of `field` with a sentence saying which rule it broke.
    pub fn invalid(field: Field, reason: impl Into<String>) -> Self {
        Error::Validation {
            field,
            reason: reason.into(),
        }
    }

    /// The stable snake_case code clients can match on.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Validation { field, .. } => match field {
                Field::Username => "invalid_username",
                Field::Email => "invalid_email",
                Field::Password => "invalid_password",
                Field::Login => "invalid_login",
                Field::RoomName => "invalid_room_name",
                Field::RoomPassword => "invalid_room_password",
                Field::Content => "invalid_message",
                Field::Emoji => "invalid_emoji",
                Field::Query => "invalid_query",
            },
            Error::Malformed(_) | Error::BadRequest => "invalid_request",
            Error::TooManyRequests { .. } | Error::TooManyConnections(_) => "rate_limited",
            Error::CsrfFailed => "csrf_failed",
            Error::ForbiddenOrigin => "forbidden_origin",
            Error::InvalidTicket => "invalid_ticket",
            Error::BadHandshake | Error::WrongWebSocketVersion => "bad_handshake",
            Error::WebSocketNeedsGet | Error::WebClientNeedsGet | Error::MethodNotAllowed => {
                "method_not_allowed"
            }
            Error::NoSuchRoute => "not_found",
            Error::PayloadTooLarge => "payload_too_large",
            Error::LengthRequired => "length_required",
            Error::UnsupportedMediaType => "unsupported_media_type",
            Error::MetricsTokenRequired => "unauthorized",
            Error::RoomNotFound => "room_not_found",
            Error::BadRoomPassword => "bad_room_password",
            Error::RoomExists => "conflict",
            Error::NotOwner | Error::NotInRoom | Error::RoomQuota(_) => "forbidden",
            Error::RoomRequired | Error::InvalidMessage => "invalid_message",
            Error::MessageNotFound { .. }
            | Error::MessageDeleted { .. }
            | Error::ReactionNotFound
            | Error::UserNotFound
            | Error::NotAMember => "not_found",
            Error::RoleNotAllowed | Error::NotOwnerToTransfer | Error::MayNotModerate => {
                "forbidden"
            }
            Error::DirectWithYourself | Error::BlockYourself => "invalid_request",
            Error::Blocked | Error::DirectRoom => "forbidden",
            Error::NotAuthor
            | Error::NotAuthorOrOwner
            | Error::EditWindowClosed { .. }
            | Error::TooManyReactions { .. } => "forbidden",
            Error::MessageTooLarge { .. } => "message_too_large",
            Error::RateLimited => "rate_limited",
            Error::UsernameTaken | Error::EmailTaken => "conflict",
            Error::InvalidCredentials => "invalid_credentials",
            Error::MissingCredentials => "unauthorized",
            Error::InvalidToken(TokenRejection::Expired) => "token_expired",
            Error::InvalidToken(TokenRejection::Revoked) => "token_revoked",
            Error::InvalidToken(_) => "invalid_token",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal_error",
        }
    }

    /// What sort of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Validation { .. } | Error::Malformed(_) | Error::BadRequest => {
                ErrorKind::Invalid
            }
            Error::BadHandshake => ErrorKind::Invalid,
            Error::WrongWebSocketVersion => ErrorKind::UpgradeRequired,
            Error::CsrfFailed | Error::ForbiddenOrigin => ErrorKind::Forbidden,
            Error::InvalidTicket | Error::MetricsTokenRequired => ErrorKind::Unauthenticated,
            Error::TooManyRequests { .. } | Error::TooManyConnections(_) => ErrorKind::RateLimited,
            Error::WebSocketNeedsGet | Error::WebClientNeedsGet | Error::MethodNotAllowed => {
                ErrorKind::MethodNotAllowed
            }
            Error::NoSuchRoute => ErrorKind::NotFound,
            Error::PayloadTooLarge => ErrorKind::TooLarge,
            Error::LengthRequired => ErrorKind::LengthRequired,
            Error::UnsupportedMediaType => ErrorKind::UnsupportedMediaType,
            Error::UsernameTaken | Error::EmailTaken | Error::RoomExists => ErrorKind::Conflict,
            Error::RoomNotFound => ErrorKind::NotFound,
            Error::BadRoomPassword | Error::NotOwner | Error::NotInRoom | Error::RoomQuota(_) => {
                ErrorKind::Forbidden
            }
            Error::RoomRequired | Error::InvalidMessage => ErrorKind::Invalid,
            Error::MessageNotFound { .. }
            | Error::MessageDeleted { .. }
            | Error::ReactionNotFound
            | Error::UserNotFound
            | Error::NotAMember => ErrorKind::NotFound,
            Error::RoleNotAllowed | Error::NotOwnerToTransfer | Error::MayNotModerate => {
                ErrorKind::Forbidden
            }
            Error::DirectWithYourself | Error::BlockYourself => ErrorKind::Invalid,
            Error::Blocked | Error::DirectRoom => ErrorKind::Forbidden,
            Error::NotAuthor
            | Error::NotAuthorOrOwner
            | Error::EditWindowClosed { .. }
            | Error::TooManyReactions { .. } => ErrorKind::Forbidden,
            Error::MessageTooLarge { .. } => ErrorKind::TooLarge,
            Error::RateLimited => ErrorKind::RateLimited,
            Error::InvalidCredentials | Error::MissingCredentials | Error::InvalidToken(_) => {
                ErrorKind::Unauthenticated
            }
            Error::Unavailable(_) => ErrorKind::Unavailable,
            Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// The request field at fault, for validation errors and conflicts.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Error::Validation { field, .. } => Some(field.name()),
            Error::UsernameTaken => Some("username"),
            Error::EmailTaken => Some("email"),
            _ => None,
        }
    }

    /// The detail to log for failures whose client text hides it.
    pub fn log_detail(&self) -> Option<&str> {
        match self {
            Error::Unavailable(detail) | Error::Internal(detail) => Some(detail),
            _ => None,
        }
    }
}

/// Which uniqueness rule a write broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unique {
    /// Usernames are unique case-insensitively.
    Username,
    /// Emails are unique case-insensitively.
    Email,
    /// Room names are unique case-insensitively.
    RoomName,
}

/// A failure of the store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule refused the write; nothing was stored.
    #[error("conflict on {0:?}")]
    Conflict(Unique),
    /// The database cannot be reached (connection refused, pool timeout); retrying later may work.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Any other failure (a bug, a broken schema); nothing of the failed operation was stored.
    #[error("database error: {0}")]
    Backend(String),
}

/// A failure of the credential machinery itself (not a wrong password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("credential error: {0}")]
pub struct CredentialError(pub String);

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(Unique::Username) => Error::UsernameTaken,
            StoreError::Conflict(Unique::Email) => Error::EmailTaken,
            StoreError::Conflict(other) => {
                Error::Internal(format!("unexpected conflict on {other:?}"))
            }
            StoreError::Unavailable(detail) => Error::Unavailable(detail),
            StoreError::Backend(detail) => Error::Internal(detail),
        }
    }
}

impl Error {
    /// The error a client sees for the log's refusal of a change; `edit_window_secs` is the configured window.
    pub fn refused(refusal: crate::model::Refusal, edit_window_secs: u64) -> Self {
        use crate::model::Refusal;
        match refusal {
            Refusal::NoSuchMessage { seq } => Error::MessageNotFound { seq },
            Refusal::Deleted { seq } => Error::MessageDeleted { seq },
            Refusal::NotAuthor => Error::NotAuthor,
            Refusal::NotAuthorOrOwner => Error::NotAuthorOrOwner,
            Refusal::EditWindowClosed => Error::EditWindowClosed {
                secs: edit_window_secs,
            },
            Refusal::TooManyReactions { max } => Error::TooManyReactions { max },
            Refusal::NoSuchReaction => Error::ReactionNotFound,
        }
    }
}

impl From<CredentialError> for Error {
    fn from(err: CredentialError) -> Self {
        Error::Internal(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_errors_have_their_code_kind_and_literal_text() {
        use std::time::Duration;
        let cases = [
            (
                Error::TooManyRequests {
                    retry_after: Duration::from_secs(3),
                },
                "rate_limited",
                ErrorKind::RateLimited,
                "too many requests; retry later",
            ),
            (
                Error::TooManyConnections(ConnectionCap::PerUser),
                "rate_limited",
                ErrorKind::RateLimited,
                "too many open connections for this user",
            ),
            (
                Error::TooManyConnections(ConnectionCap::PerAddress),
                "rate_limited",
                ErrorKind::RateLimited,
                "too many open connections from this address",
            ),
            (
                Error::CsrfFailed,
                "csrf_failed",
                ErrorKind::Forbidden,
                "this request needs the session's CSRF token in X-CSRF-Token",
            ),
            (
                Error::ForbiddenOrigin,
                "forbidden_origin",
                ErrorKind::Forbidden,
                "this origin may not open a WebSocket",
            ),
            (
                Error::InvalidTicket,
                "invalid_ticket",
                ErrorKind::Unauthenticated,
                "the ticket is invalid, used or expired",
            ),
            (
                Error::BadHandshake,
                "bad_handshake",
                ErrorKind::Invalid,
                "not a valid WebSocket handshake",
            ),
            (
                Error::WrongWebSocketVersion,
                "bad_handshake",
                ErrorKind::UpgradeRequired,
                "WebSocket version 13 is required",
            ),
            (
                Error::WebSocketNeedsGet,
                "method_not_allowed",
                ErrorKind::MethodNotAllowed,
                "use GET to open a WebSocket",
            ),
            (
                Error::WebClientNeedsGet,
                "method_not_allowed",
                ErrorKind::MethodNotAllowed,
                "use GET for the web client's files",
            ),
            (
                Error::MethodNotAllowed,
                "method_not_allowed",
                ErrorKind::MethodNotAllowed,
                "method not allowed on this route",
            ),
            (
                Error::NoSuchRoute,
                "not_found",
                ErrorKind::NotFound,
                "no such route",
            ),
            (
                Error::PayloadTooLarge,
                "payload_too_large",
                ErrorKind::TooLarge,
                "request body is too large",
            ),
            (
                Error::LengthRequired,
                "length_required",
                ErrorKind::LengthRequired,
                "a Content-Length header is required",
            ),
            (
                Error::UnsupportedMediaType,
                "unsupported_media_type",
                ErrorKind::UnsupportedMediaType,
                "request body must be JSON (Content-Type: application/json)",
            ),
            (
                Error::BadRequest,
                "invalid_request",
                ErrorKind::Invalid,
                "the request could not be understood",
            ),
            (
                Error::MetricsTokenRequired,
                "unauthorized",
                ErrorKind::Unauthenticated,
                "a metrics token is required",
            ),
        ];
        for (error, code, kind, text) in cases {
            assert_eq!(
                (error.code(), error.kind(), error.to_string().as_str()),
                (code, kind, text),
                "{error:?}"
            );
        }
    }

    #[test]
    fn missing_credentials_has_the_seeds_literal_text() {
        assert_eq!(
            Error::MissingCredentials.to_string(),
            "Authorization header with Bearer token required"
        );
    }

    #[test]
    fn hidden_details_never_reach_the_client_text() {
        let err = Error::Internal("relation \"users\" does not exist".into());
        assert_eq!(err.to_string(), "internal error");
        assert_eq!(err.log_detail(), Some("relation \"users\" does not exist"));
        let err = Error::Unavailable("connection refused".into());
        assert!(!err.to_string().contains("refused"));
    }

    #[test]
    fn store_conflicts_name_the_field() {
        let err = Error::from(StoreError::Conflict(Unique::Email));
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert_eq!(err.field(), Some("email"));
    }
}
