//! WebSocket support: the two codecs of PROTOCOL §4 and §5. (The `/ws` endpoint and its session task build on these.)

pub mod codec;
