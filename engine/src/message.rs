//! The engine's contract with the runtime: messages in, per-message fates out (defined in
//! `weir_pipelines::message`, shared with the connectors).

pub use weir_pipelines::message::*;
