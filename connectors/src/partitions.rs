//! Keyed partitions of a stateful pipeline on JetStream. A routing stage copies each input
//! into the pipeline's partition stream (`WEIR_PART_<durable>`), on the subject of its
//! partition (`_weir.partition.<durable>.<p>`, `p` from a stable hash of the partition key),
//! with its original payload and headers and its source subject, stream, sequence and time in
//! `Weir-Copy-*` headers. Each partition's owner reads its subject through its own durable
//! consumer (`<durable>_p<p>`), and [`unwrap`] gives the engine the original message back.
//! Copies carry a message id per source message, so a routing stage that crashes between
//! copying and acking never copies twice (within the stream's duplicate window).

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use weir_pipelines::message::InputMessage;

/// Header naming the source subject of a copy.
pub const SOURCE_SUBJECT: &str = "Weir-Copy-Subject";
/// Header naming the source stream of a copy.
pub const SOURCE_STREAM: &str = "Weir-Copy-Stream";
/// Header with the source stream sequence of a copy.
pub const SOURCE_SEQ: &str = "Weir-Copy-Seq";
/// Header with the time the source message was stored (Unix µs).
pub const SOURCE_TIME: &str = "Weir-Copy-Time";
/// Header keeping a source message's own `Nats-Msg-Id` (the copy's id is Weir's).
pub const SOURCE_MSG_ID: &str = "Weir-Copy-Msg-Id";
/// How long the partition stream remembers copy ids: longer than a routing stage takes to
/// be redelivered an input it copied but did not ack.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(10 * 60);
/// How long copies are kept at most; each owner also trims what its checkpoints cover.
pub const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Where the partitions of one pipeline live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLayout {
    /// The pipeline's durable consumer name on its source (unique per tenant and pipeline).
    pub durable: String,
    /// How many partitions.
    pub partitions: u32,
}

impl PartitionLayout {
    /// The partition stream's name.
    pub fn stream(&self) -> String {
        format!("WEIR_PART_{}", self.durable)
    }

    /// The subject of partition `p`.
    pub fn subject(&self, p: u32) -> String {
        format!("_weir.partition.{}.{p}", self.durable)
    }

    /// The lease and checkpoint name of partition `p`, also its consumer's durable name.
    pub fn key(&self, p: u32) -> String {
        format!("{}_p{p}", self.durable)
    }

    /// The partition of a key made of `parts` (the values of the partition expressions):
    /// xxHash32 of the parts, each followed by a 0x1f separator, modulo the partition count.
    /// Stable across processes and versions, so every worker routes a key the same way.
    /// (xxHash32 rather than 64: the build already has it, and 32 bits spread 256 partitions.)
    pub fn partition_of<'a>(&self, parts: impl IntoIterator<Item = &'a [u8]>) -> u32 {
        let mut hasher = twox_hash::XxHash32::with_seed(0);
        for part in parts {
            std::hash::Hasher::write(&mut hasher, part);
            std::hash::Hasher::write(&mut hasher, &[0x1f]);
        }
        (std::hash::Hasher::finish(&hasher) % u64::from(self.partitions.max(1))) as u32
    }

    /// Creates the partition stream when absent.
    pub async fn ensure_stream(&self, js: &jetstream::Context) -> Result<(), String> {
        let name = self.stream();
        js.get_or_create_stream(stream::Config {
            name: name.clone(),
            description: Some(format!(
                "Weir: keyed partitions of the stateful pipeline with consumer {}",
                self.durable
            )),
            subjects: vec![format!("_weir.partition.{}.*", self.durable)],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            duplicate_window: DUPLICATE_WINDOW,
            max_age: MAX_AGE,
            ..Default::default()
        })
        .await
        .map(|_| ())
        .map_err(|e| format!("partition stream {name}: {e}"))
    }

    /// Removes partition `p`'s copies up to and including sequence `position` (a checkpoint
    /// covers them; they are never read again).
    pub async fn trim(&self, js: &jetstream::Context, p: u32, position: u64) -> Result<(), String> {
        let name = self.stream();
        let stream = js
            .get_stream_no_info(&name)
            .await
            .map_err(|e| format!("partition stream {name}: {e}"))?;
        stream
            .purge()
            .filter(self.subject(p))
            .sequence(position + 1)
            .await
            .map(|_| ())
            .map_err(|e| format!("trimming partition {p} of {name}: {e}"))
    }
}

/// The headers of `input`'s copy: its own (its `Nats-Msg-Id` kept as `Weir-Copy-Msg-Id`),
/// then where it came from.
pub fn wrap(input: &InputMessage) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = input
        .headers
        .iter()
        .map(|(name, value)| {
            let name = if name.eq_ignore_ascii_case("Nats-Msg-Id") {
                SOURCE_MSG_ID.to_string()
            } else {
                name.clone()
            };
            (name, value.clone())
        })
        .collect();
    headers.push((SOURCE_SUBJECT.into(), input.subject.clone()));
    headers.push((SOURCE_STREAM.into(), input.stream.clone()));
    headers.push((SOURCE_SEQ.into(), input.seq.to_string()));
    headers.push((SOURCE_TIME.into(), input.timestamp_micros.to_string()));
    headers
}

/// Turns a copy read from a partition back into the source message [`wrap`] copied: its
/// subject, stream, sequence, time and headers. A message without the `Weir-Copy-*`
/// headers is left as it is.
pub fn unwrap(input: &mut InputMessage) {
    let mut headers = Vec::with_capacity(input.headers.len());
    let mut found = false;
    for (name, value) in std::mem::take(&mut input.headers) {
        match name.as_str() {
            SOURCE_SUBJECT => (input.subject, found) = (value, true),
            SOURCE_STREAM => input.stream = value,
            SOURCE_SEQ => input.seq = value.parse().unwrap_or(input.seq),
            SOURCE_TIME => input.timestamp_micros = value.parse().unwrap_or(input.timestamp_micros),
            SOURCE_MSG_ID => headers.push(("Nats-Msg-Id".to_string(), value)),
            n if n.eq_ignore_ascii_case("Nats-Msg-Id") => {}
            _ => headers.push((name, value)),
        }
    }
    if found {
        headers.sort_by(|a, b| a.0.cmp(&b.0));
        input.headers = headers;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_unwraps_to_its_source_message() {
        let input = InputMessage {
            subject: "orders.eu".into(),
            headers: vec![
                ("Nats-Msg-Id".into(), "o-1".into()),
                ("Trace".into(), "t".into()),
            ],
            payload: bytes::Bytes::from_static(b"{}"),
            seq: 42,
            stream: "ORDERS".into(),
            timestamp_micros: 1_700_000_000_000_000,
        };
        let mut copy = InputMessage {
            subject: "_weir.partition.d.3".into(),
            headers: wrap(&input),
            seq: 7,
            stream: "WEIR_PART_d".into(),
            timestamp_micros: 5,
            ..input.clone()
        };
        copy.headers
            .push(("Nats-Msg-Id".into(), "weir-copy".into()));
        unwrap(&mut copy);
        assert_eq!(copy, input);
    }

    #[test]
    fn keys_spread_over_every_partition_and_always_the_same_way() {
        let layout = PartitionLayout {
            durable: "d".into(),
            partitions: 8,
        };
        let mut seen = [0u32; 8];
        for k in 0..1000 {
            let key = format!("customer-{k}");
            let p = layout.partition_of([key.as_bytes()]);
            assert_eq!(p, layout.partition_of([key.as_bytes()]));
            seen[p as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 80), "{seen:?}");
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        let big = PartitionLayout {
            partitions: u32::MAX,
            ..layout
        };
        assert_ne!(
            big.partition_of([&b"ab"[..], b"c"]),
            big.partition_of([&b"a"[..], b"bc"])
        );
    }
}
