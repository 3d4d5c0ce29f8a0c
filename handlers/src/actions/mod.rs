//! One module per action. Each is a plain async function over a [`crate::Context`]: the runtime decodes a request
//! or frame into the action's request type, calls it, and renders what it returns.

pub mod authenticate;
pub mod create_room;
pub mod delete_room;
pub mod disconnect;
pub mod history;
pub mod join;
pub mod leave;
pub mod list_rooms;
pub mod login;
pub mod logout;
pub mod me;
pub mod members;
pub mod message;
pub mod register;
mod rooms;
pub mod typing;

use crate::error::{Error, Field};

/// The value of a required request field, or a validation error naming it.
pub(crate) fn required(field: Field, value: &Option<String>) -> Result<&str, Error> {
    match value.as_deref() {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(Error::invalid(
            field,
            format!("{} is required", field.name()),
        )),
    }
}
