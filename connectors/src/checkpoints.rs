//! Where stateful pipelines (`window`, `dedup`) keep their checkpoints: the Object Store
//! bucket `weir_checkpoints` in the pipeline's own NATS account, one object per pipeline,
//! named by its durable consumer. An object is the operators' state together with the input
//! position it reflects; writing a new one replaces the old one at once (the object's meta
//! message is the commit point), so a crash mid-write leaves the previous checkpoint whole.
//! The leases that give each stateful pipeline one owner at a time live beside them, in the
//! KV bucket `weir_leases` (see [`Leases`]).

use std::time::Duration;

use async_nats::jetstream::{self, kv, object_store};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

/// The checkpoint bucket.
pub const CHECKPOINTS_BUCKET: &str = "weir_checkpoints";
/// The lease bucket.
pub const LEASES_BUCKET: &str = "weir_leases";

/// What a checkpoint says besides the state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// The pipeline's name.
    pub pipeline: String,
    /// The last stream sequence of the source that the state reflects: after a restore,
    /// reading resumes after it.
    pub position: u64,
    /// Identifies the definition of the stateful nodes the state belongs to; a pipeline
    /// version whose stateful nodes differ cannot take the state over.
    pub fingerprint: String,
    /// When it was taken (Unix ms).
    pub taken_at_ms: u64,
    /// Inputs processed since the pipeline first started, up to `position`.
    pub events: u64,
}

/// One checkpoint: the meta and the operators' state (`CompiledPipeline::snapshot`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// What it covers.
    pub meta: CheckpointMeta,
    /// The operators' state.
    pub state: Vec<u8>,
}

impl Checkpoint {
    /// The stored form: the meta's JSON length (4 bytes, big-endian), the meta, the state.
    pub fn encode(&self) -> Vec<u8> {
        let meta = serde_json::to_vec(&self.meta).unwrap_or_default();
        let mut out = Vec::with_capacity(4 + meta.len() + self.state.len());
        out.extend_from_slice(&(meta.len() as u32).to_be_bytes());
        out.extend_from_slice(&meta);
        out.extend_from_slice(&self.state);
        out
    }

    /// Reads [`Checkpoint::encode`]'s bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let (len, rest) = bytes
            .split_first_chunk::<4>()
            .ok_or("checkpoint shorter than its header")?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return Err("checkpoint meta cut short".into());
        }
        let meta = serde_json::from_slice(&rest[..len])
            .map_err(|e| format!("checkpoint meta is not readable: {e}"))?;
        Ok(Checkpoint {
            meta,
            state: rest[len..].to_vec(),
        })
    }
}

/// The checkpoint bucket of one account.
#[derive(Clone)]
pub struct CheckpointStore {
    bucket: object_store::ObjectStore,
}

impl CheckpointStore {
    /// Opens the bucket, creating it when absent.
    pub async fn open(js: &jetstream::Context) -> Result<Self, String> {
        if let Ok(bucket) = js.get_object_store(CHECKPOINTS_BUCKET).await {
            return Ok(CheckpointStore { bucket });
        }
        let created = js
            .create_object_store(object_store::Config {
                bucket: CHECKPOINTS_BUCKET.into(),
                description: Some("Weir: state checkpoints of window and dedup nodes".into()),
                ..Default::default()
            })
            .await;
        match created {
            Ok(bucket) => Ok(CheckpointStore { bucket }),
            // Another worker may have created it in between.
            Err(e) => js
                .get_object_store(CHECKPOINTS_BUCKET)
                .await
                .map(|bucket| CheckpointStore { bucket })
                .map_err(|_| format!("checkpoint bucket {CHECKPOINTS_BUCKET}: {e}")),
        }
    }

    /// The last checkpoint stored under `name`, if any.
    pub async fn load(&self, name: &str) -> Result<Option<Checkpoint>, String> {
        let mut object = match self.bucket.get(name).await {
            Ok(o) => o,
            Err(e) if e.kind() == object_store::GetErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("checkpoint {name}: {e}")),
        };
        let mut bytes = Vec::new();
        object
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| format!("read checkpoint {name}: {e}"))?;
        Checkpoint::decode(&bytes).map(Some)
    }

    /// Stores `checkpoint` under `name`, replacing the previous one; returns its size.
    pub async fn save(&self, name: &str, checkpoint: &Checkpoint) -> Result<usize, String> {
        let bytes = checkpoint.encode();
        let mut reader = bytes.as_slice();
        self.bucket
            .put(name, &mut reader)
            .await
            .map_err(|e| format!("store checkpoint {name}: {e}"))?;
        Ok(bytes.len())
    }
}

/// Whether lease key `key` is of the pipeline with durable name `durable`: its own
/// (`durable`), one of its partitions' (`durable_p<k>`), or a member key of its group.
fn belongs_to(key: &str, durable: &str) -> bool {
    let Some(rest) = key.strip_prefix(durable) else {
        return false;
    };
    rest.is_empty()
        || rest
            .strip_prefix("_p")
            .is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
        || rest.starts_with(".members.")
}

/// Removes what a stateful pipeline kept in its account, by its durable name: its checkpoints
/// (its own and its partitions'), its leases and group members, and its partition stream, so
/// that a pipeline created again under the same name starts empty. What is already gone is
/// no error.
pub async fn forget_state(js: &jetstream::Context, durable: &str) -> Result<(), String> {
    use futures::StreamExt as _;
    let partition_stream = format!("WEIR_PART_{durable}");
    if js.get_stream(&partition_stream).await.is_ok() {
        js.delete_stream(&partition_stream)
            .await
            .map_err(|e| format!("delete stream {partition_stream}: {e}"))?;
    }
    if let Ok(bucket) = js.get_object_store(CHECKPOINTS_BUCKET).await {
        // The names its checkpoints can have: its own and one per partition (up to the most
        // partitions a pipeline may have).
        let names = std::iter::once(durable.to_string())
            .chain((0..weir_pipelines::check::MAX_PARTITIONS).map(|p| format!("{durable}_p{p}")));
        for name in names {
            if bucket.info(&name).await.is_ok_and(|i| !i.deleted) {
                bucket
                    .delete(&name)
                    .await
                    .map_err(|e| format!("delete checkpoint {name}: {e}"))?;
            }
        }
    }
    if let Ok(bucket) = js.get_key_value(LEASES_BUCKET).await {
        let mut keys = bucket
            .keys()
            .await
            .map_err(|e| format!("list {LEASES_BUCKET}: {e}"))?;
        let mut mine = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| format!("list {LEASES_BUCKET}: {e}"))?;
            if belongs_to(&key, durable) {
                mine.push(key);
            }
        }
        for key in mine {
            bucket
                .purge(&key)
                .await
                .map_err(|e| format!("remove lease {key}: {e}"))?;
        }
    }
    Ok(())
}

/// Leases on stateful pipelines: a key per pipeline whose value names its owner. A lease is
/// taken with a create (fails while another holds it) and kept with updates that expect the
/// last revision (fail once someone else took it); the bucket's `max_age` is the lease time,
/// so the server itself forgets a lease its owner stopped renewing (a worker that died).
#[derive(Clone)]
pub struct Leases {
    bucket: kv::Store,
}

/// A held lease: its key and the revision of the last write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The key (the pipeline's durable name).
    pub key: String,
    /// The revision of the owner's last write.
    pub revision: u64,
}

impl Leases {
    /// Opens the lease bucket, creating it with lease time `ttl` when absent (an existing
    /// bucket keeps the lease time it was created with).
    pub async fn open(js: &jetstream::Context, ttl: Duration) -> Result<Self, String> {
        if let Ok(bucket) = js.get_key_value(LEASES_BUCKET).await {
            return Ok(Leases { bucket });
        }
        let created = js
            .create_key_value(kv::Config {
                bucket: LEASES_BUCKET.into(),
                description: "Weir: which worker owns each stateful pipeline".into(),
                history: 1,
                max_age: ttl,
                ..Default::default()
            })
            .await;
        match created {
            Ok(bucket) => Ok(Leases { bucket }),
            Err(e) => js
                .get_key_value(LEASES_BUCKET)
                .await
                .map(|bucket| Leases { bucket })
                .map_err(|_| format!("lease bucket {LEASES_BUCKET}: {e}")),
        }
    }

    /// The lease time of the bucket.
    pub async fn ttl(&self) -> Duration {
        match self.bucket.status().await {
            Ok(s) => s.max_age(),
            Err(_) => Duration::ZERO,
        }
    }

    /// Takes the lease `key` for `owner`; `None` while another owner holds it.
    pub async fn acquire(&self, key: &str, owner: &str) -> Result<Option<Lease>, String> {
        let value = bytes::Bytes::from(owner.to_string());
        match self.bucket.create(key, value).await {
            Ok(revision) => Ok(Some(Lease {
                key: key.to_string(),
                revision,
            })),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                // Our own lease (a loop of the same worker that started over) is ours again.
                match self.bucket.entry(key).await {
                    Ok(Some(entry)) if entry.value == owner.as_bytes() => {
                        let lease = Lease {
                            key: key.to_string(),
                            revision: entry.revision,
                        };
                        self.renew(&lease, owner).await
                    }
                    _ => Ok(None),
                }
            }
            Err(e) => Err(format!("lease {key}: {e}")),
        }
    }

    /// Renews `owner`'s held lease (an update that expects its last revision); `None` when it
    /// was lost (expired, or taken by another owner).
    pub async fn renew(&self, lease: &Lease, owner: &str) -> Result<Option<Lease>, String> {
        let value = bytes::Bytes::from(owner.to_string());
        match self.bucket.update(&lease.key, value, lease.revision).await {
            Ok(revision) => Ok(Some(Lease {
                key: lease.key.clone(),
                revision,
            })),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(e) => Err(format!("lease {}: {e}", lease.key)),
        }
    }

    /// Says that `member` takes part in `group` (a key `<group>.members.<member>`, written
    /// again by each call; the bucket's `max_age` forgets a member that stopped calling) and
    /// returns how many members the group has now, this one included.
    pub async fn join(&self, group: &str, member: &str) -> Result<usize, String> {
        use futures::StreamExt as _;
        let prefix = format!("{group}.members.");
        self.bucket
            .put(
                format!("{prefix}{member}"),
                bytes::Bytes::from(member.to_string()),
            )
            .await
            .map_err(|e| format!("membership of {group}: {e}"))?;
        let mut keys = self
            .bucket
            .keys()
            .await
            .map_err(|e| format!("members of {group}: {e}"))?;
        let mut members = 0;
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| format!("members of {group}: {e}"))?;
            members += usize::from(key.starts_with(&prefix));
        }
        Ok(members.max(1))
    }

    /// Leaves `group` at once (a graceful stop), so the others take its share sooner.
    pub async fn leave(&self, group: &str, member: &str) -> Result<(), String> {
        self.bucket
            .delete(format!("{group}.members.{member}"))
            .await
            .map_err(|e| format!("leaving {group}: {e}"))
    }

    /// Gives a held lease up, so another worker can take it at once.
    pub async fn release(&self, lease: &Lease) -> Result<(), String> {
        self.bucket
            .delete_expect_revision(&lease.key, Some(lease.revision))
            .await
            .map_err(|e| format!("lease {}: {e}", lease.key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipelines_state_is_told_apart_from_its_neighbours() {
        for name in [
            "weir_a_p",
            "weir_a_p_p0",
            "weir_a_p_p12",
            "weir_a_p.members.host_1",
        ] {
            assert!(belongs_to(name, "weir_a_p"), "{name}");
        }
        for name in [
            "weir_a_px",
            "weir_a_p_p",
            "weir_a_p_pages",
            "weir_a_p2_p0",
            "weir_a",
        ] {
            assert!(!belongs_to(name, "weir_a_p"), "{name}");
        }
    }

    #[test]
    fn a_checkpoint_reads_back_as_written() {
        let c = Checkpoint {
            meta: CheckpointMeta {
                pipeline: "p".into(),
                position: 42,
                fingerprint: "f".into(),
                taken_at_ms: 7,
                events: 40,
            },
            state: b"{\"w\":\"AAA\"}".to_vec(),
        };
        assert_eq!(Checkpoint::decode(&c.encode()), Ok(c));
        assert!(Checkpoint::decode(b"\x00\x00").is_err());
        assert!(Checkpoint::decode(b"\x00\x00\x00\x09{}").is_err());
    }
}
