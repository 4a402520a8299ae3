//! Weir connectors: I/O between pipelines and outside systems. Today that is JetStream: the
//! durable pull source, the publishing sink with a bounded window of PubAcks, stream
//! declarations, and the dead-letter publisher.
#![warn(missing_docs)]

pub mod accounts;
pub mod checkpoints;
pub mod continuity;
pub mod dead_letter;
pub mod delivery;
pub mod error;
pub mod fast_batch;
/// The fleet contract, now in `weir_pipelines::fleet` (both sides depend on that crate).
pub use weir_pipelines::fleet;
pub mod modules;
pub mod nats_server;
pub mod partitions;
pub mod sink;
pub mod source;
pub mod stream_routes;
pub mod streams;
pub mod units;

pub use dead_letter::{DeadLetter, DeadLetterPublisher, DlqTarget, Failed};
pub use delivery::{AckHandle, Delivery, Settle};
pub use error::{ConnectorError, PublishFailure};
pub use sink::{JetStreamSink, MsgIdPolicy, Outbound};
pub use source::{PullSource, SourceSettings};
pub use streams::{ensure_dlq_stream, ensure_stream, stream_capturing, stream_config};
pub use weir_pipelines::FailureKind;

/// Connects to NATS the way every Weir process does: reconnects forever, retries the first
/// connection, and names the connection so that it can be told apart in server monitoring.
pub async fn connect(url: &str, name: &str) -> Result<async_nats::Client, ConnectorError> {
    connect_as(url, name, None).await
}

/// [`connect`] with user credentials (the text of a `.creds` file: user JWT and seed), as a
/// user of one NATS account in operator mode; `None` connects without credentials.
pub async fn connect_as(
    url: &str,
    name: &str,
    credentials: Option<&str>,
) -> Result<async_nats::Client, ConnectorError> {
    let options = match credentials {
        Some(creds) => async_nats::ConnectOptions::with_credentials(creds).map_err(|err| {
            ConnectorError::Connect {
                url: url.to_string(),
                reason: format!("unusable NATS credentials: {err}"),
            }
        })?,
        None => async_nats::ConnectOptions::new(),
    };
    options
        .name(name)
        .max_reconnects(None)
        .connection_timeout(std::time::Duration::from_secs(5))
        .connect(url)
        .await
        .map_err(|err| ConnectorError::Connect {
            url: url.to_string(),
            reason: err.to_string(),
        })
}
