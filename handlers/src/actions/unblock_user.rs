//! `unblock_user`: the user accepts direct messages from someone they blocked. (Its tests are with `block_user`'s.)

use crate::actions::block_user::{BlockRequest, set};
use crate::context::Context;
use crate::error::Error;
use crate::event::{Reply, Session};

/// Accepts direct messages from `username` again; replies `unblocked` (also when they were not blocked).
pub async fn unblock_user(
    ctx: &dyn Context,
    session: &Session,
    req: BlockRequest,
) -> Result<Vec<Reply>, Error> {
    set(ctx, session, req, false).await
}
