//! Every way Palaver closes a WebSocket, in one place: the close code and the reason text it sends (PROTOCOL §2.5).

/// Why the server ends a WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Close {
    /// The client stopped answering pings (1000).
    NoPong,
    /// The server is shutting down; clients reconnect (1001).
    ShuttingDown,
    /// A frame broke RFC 6455: reserved bits, a bad opcode, an unmasked frame (1002).
    ProtocolError,
    /// A text frame that is not UTF-8 (1007).
    InvalidUtf8,
    /// A user who kept sending past the command limit (1008).
    RateLimitAbuse,
    /// The token the socket was opened with was revoked by a logout (1008).
    TokenRevoked,
    /// The token the socket was opened with expired (1008).
    TokenExpired,
    /// A frame over the transport limit (1009).
    FrameTooLarge,
    /// The connection's queue overflowed, or it fell too far behind while catching up; it may resume (1013).
    SlowConsumer,
    /// This node lost the cluster (cut off from NATS too long, so the others count it dead); clients reconnect to
    /// another node and resume (1012).
    ClusterLost,
}

/// Every close, for looking one up by its index.
const ALL: [Close; 10] = [
    Close::NoPong,
    Close::ShuttingDown,
    Close::ProtocolError,
    Close::InvalidUtf8,
    Close::RateLimitAbuse,
    Close::TokenRevoked,
    Close::TokenExpired,
    Close::FrameTooLarge,
    Close::SlowConsumer,
    Close::ClusterLost,
];

impl Close {
    /// The close with index `index` (its `as u8`), if any; for storing one in an atomic.
    pub fn from_index(index: u8) -> Option<Close> {
        ALL.get(usize::from(index)).copied()
    }

    /// The close code sent.
    pub fn code(self) -> u16 {
        match self {
            Close::NoPong => 1000,
            Close::ShuttingDown => 1001,
            Close::ProtocolError => 1002,
            Close::InvalidUtf8 => 1007,
            Close::RateLimitAbuse | Close::TokenRevoked | Close::TokenExpired => 1008,
            Close::FrameTooLarge => 1009,
            Close::ClusterLost => 1012,
            Close::SlowConsumer => 1013,
        }
    }

    /// The reason text sent with the code.
    pub fn reason(self) -> &'static str {
        match self {
            Close::NoPong => "no pong",
            Close::ShuttingDown => "server shutting down",
            Close::ProtocolError => "protocol error",
            Close::InvalidUtf8 => "invalid UTF-8",
            Close::RateLimitAbuse => "rate limit abuse",
            Close::TokenRevoked => "token revoked",
            Close::TokenExpired => "token expired",
            Close::FrameTooLarge => "frame too large",
            Close::SlowConsumer => "slow consumer",
            Close::ClusterLost => "node lost the cluster",
        }
    }

    /// Whether the close is for policy or load, which the audit log records.
    pub fn is_audited(self) -> bool {
        matches!(self.code(), 1008 | 1013)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_close_round_trips_through_its_index() {
        for close in ALL {
            assert_eq!(Close::from_index(close as u8), Some(close));
        }
        assert_eq!(Close::from_index(ALL.len() as u8), None);
    }
}
