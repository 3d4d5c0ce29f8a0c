//! `GET /ws?ticket=…`: a WebSocket ticket whose signature and expiry the runtime checked is turned into the principal
//! it stands for, once. The ticket's token must still be unrevoked, and the database records the ticket's use, so a
//! ticket opens one socket on whichever node it is presented to, and then none anywhere.

use crate::context::Context;
use crate::error::{Error, TokenRejection};
use crate::model::{Principal, SignedTicket};

/// The principal of `ticket`, which is used up. A ticket used before (on any node) is [`Error::InvalidTicket`]; one
/// whose token was logged out is refused as that token would be; a database that does not answer is
/// [`Error::Unavailable`], and the ticket stays unused.
pub async fn redeem_ticket(ctx: &dyn Context, ticket: SignedTicket) -> Result<Principal, Error> {
    let store = ctx.store();
    if store.is_token_revoked(&ticket.principal.token_id).await? {
        return Err(Error::InvalidToken(TokenRejection::Revoked));
    }
    if !store.use_ticket(&ticket.id, ticket.expires_at).await? {
        return Err(Error::InvalidTicket);
    }
    Ok(ticket.principal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::authenticate::authenticate;
    use crate::actions::logout::logout;
    use crate::testing::TestContext;
    use crate::{Clock, ErrorKind, Store};

    async fn ticket(ctx: &TestContext, id: &str) -> SignedTicket {
        let (_, token) = ctx.register_and_login("john_doe").await;
        let principal = authenticate(ctx, Some(&token)).await.unwrap();
        SignedTicket {
            id: id.into(),
            expires_at: ctx.clock.now() + time::Duration::seconds(30),
            principal,
        }
    }

    #[tokio::test]
    async fn a_ticket_opens_one_socket_and_then_none() {
        let ctx = TestContext::new();
        let ticket = ticket(&ctx, "ticket-1").await;
        let principal = redeem_ticket(&ctx, ticket.clone()).await.unwrap();
        assert_eq!(principal, ticket.principal);
        assert_eq!(
            redeem_ticket(&ctx, ticket.clone()).await.unwrap_err(),
            Error::InvalidTicket
        );
        // Another ticket of the same token is its own.
        let other = SignedTicket {
            id: "ticket-2".into(),
            ..ticket
        };
        assert!(redeem_ticket(&ctx, other).await.is_ok());
    }

    #[tokio::test]
    async fn a_logged_out_tokens_ticket_is_refused_as_revoked() {
        let ctx = TestContext::new();
        let ticket = ticket(&ctx, "ticket-1").await;
        logout(&ctx, &ticket.principal).await.unwrap();
        assert_eq!(
            redeem_ticket(&ctx, ticket.clone()).await.unwrap_err(),
            Error::InvalidToken(TokenRejection::Revoked)
        );
        assert!(
            ctx.store
                .use_ticket("ticket-1", ticket.expires_at)
                .await
                .unwrap(),
            "a refused ticket was not used"
        );
    }

    #[tokio::test]
    async fn without_the_database_a_ticket_is_not_redeemed_and_stays_unused() {
        let ctx = TestContext::new();
        let ticket = ticket(&ctx, "ticket-1").await;
        ctx.store.set_unavailable(true);
        let err = redeem_ticket(&ctx, ticket.clone()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        ctx.store.set_unavailable(false);
        assert!(redeem_ticket(&ctx, ticket).await.is_ok());
    }
}
