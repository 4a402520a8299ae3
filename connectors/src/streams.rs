//! JetStream streams from `kind: Stream` resources, created or updated idempotently, and the
//! dead-letter stream that every pipeline needs (created when absent).

use async_nats::jetstream::{self, stream};
use weir_pipelines::{Discard, Retention, Storage, StreamResource};

use crate::{ConnectorError, units};

/// The JetStream configuration for a `Stream` resource.
pub fn stream_config(resource: &StreamResource) -> Result<stream::Config, ConnectorError> {
    let spec = &resource.spec;
    let name = resource.metadata.name.clone();
    let field = |f: &str| format!("Stream {name}: spec.{f}");
    let mut config = stream::Config {
        name: name.clone(),
        subjects: spec.subjects.clone(),
        retention: match spec.retention {
            Retention::Limits => stream::RetentionPolicy::Limits,
            Retention::Interest => stream::RetentionPolicy::Interest,
            Retention::Workqueue => stream::RetentionPolicy::WorkQueue,
        },
        storage: match spec.storage {
            Storage::File => stream::StorageType::File,
            Storage::Memory => stream::StorageType::Memory,
        },
        discard: match spec.discard {
            Discard::Old => stream::DiscardPolicy::Old,
            Discard::New => stream::DiscardPolicy::New,
        },
        max_messages: spec.max_msgs.unwrap_or(-1),
        num_replicas: spec.replicas.max(1) as usize,
        // Lets the sink publish into the stream in fast batches (one PubAck per batch).
        allow_batch_publish: true,
        ..Default::default()
    };
    if let Some(v) = &spec.max_bytes {
        config.max_bytes = units::size(&field("max_bytes"), v)? as i64;
    } else {
        config.max_bytes = -1;
    }
    if let Some(v) = &spec.max_age {
        config.max_age = units::duration(&field("max_age"), v)?;
    }
    if let Some(v) = &spec.max_msg_size {
        let size = units::size(&field("max_msg_size"), v)?;
        config.max_message_size =
            i32::try_from(size).map_err(|_| ConnectorError::InvalidSetting {
                field: field("max_msg_size"),
                value: v.clone(),
                reason: "larger than 2 GiB".into(),
            })?;
    } else {
        config.max_message_size = -1;
    }
    if let Some(v) = &spec.duplicate_window {
        config.duplicate_window = units::duration(&field("duplicate_window"), v)?;
    }
    Ok(config)
}

/// Creates the stream of `resource`, or updates it when it exists. Running it twice with the
/// same resource changes nothing.
pub async fn ensure_stream(
    js: &jetstream::Context,
    resource: &StreamResource,
) -> Result<stream::Info, ConnectorError> {
    let config = stream_config(resource)?;
    let max_bytes = config.max_bytes;
    js.create_or_update_stream(config)
        .await
        .map_err(|err| ConnectorError::Stream {
            stream: resource.metadata.name.clone(),
            reason: match storage_hint(&err, max_bytes) {
                Some(hint) => format!("{err}; {hint}"),
                None => err.to_string(),
            },
        })
}

/// What to do when NATS refuses a stream for want of storage. The server reserves a stream's
/// `max_bytes` up front, out of the storage it was given at start (by default 75% of the free
/// disk), so a stream can be refused on a nearly full disk before it holds a byte.
fn storage_hint(err: &jetstream::context::CreateStreamError, max_bytes: i64) -> Option<String> {
    use jetstream::ErrorCode;
    let jetstream::context::CreateStreamErrorKind::JetStream(js_err) = err.kind() else {
        return None;
    };
    let code = js_err.error_code();
    if code != ErrorCode::STORAGE_RESOURCES_EXCEEDED && code != ErrorCode::INSUFFICIENT_RESOURCES {
        return None;
    }
    let reserved = if max_bytes > 0 {
        format!("this stream reserves spec.max_bytes = {max_bytes} bytes")
    } else {
        "this stream sets no spec.max_bytes".to_string()
    };
    Some(format!(
        "the server has less JetStream storage left than the stream needs ({reserved}): lower \
         spec.max_bytes, free disk space under the server's store directory, or give the \
         server more storage (jetstream max_file_store) and restart it"
    ))
}

/// The stream that captures `subject`, if any.
pub async fn stream_capturing(
    js: &jetstream::Context,
    subject: &str,
) -> Result<Option<String>, String> {
    match js.stream_by_subject(subject).await {
        Ok(name) => Ok(Some(name)),
        Err(err)
            if matches!(
                err.kind(),
                jetstream::context::GetStreamByNameErrorKind::NotFound
            ) =>
        {
            Ok(None)
        }
        Err(err) => Err(err.to_string()),
    }
}

/// Makes sure a stream stores the dead letters published to `subject`; returns its name.
///
/// When a stream already captures `subject`, that stream is used, whatever its name, unless
/// `named` (the pipeline names its DLQ `stream:`) and it is another stream: then the names
/// conflict and the error says which stream captures the subject. Otherwise stream `name` is
/// created with `default_subjects` (and `subject`) when absent, or given `subject`.
pub async fn ensure_dlq_stream(
    js: &jetstream::Context,
    name: &str,
    subject: &str,
    default_subjects: &[String],
    named: bool,
) -> Result<String, ConnectorError> {
    let fail = |reason: String| ConnectorError::Stream {
        stream: name.to_string(),
        reason,
    };
    if let Some(capturing) = stream_capturing(js, subject).await.map_err(&fail)? {
        if named && capturing != name {
            return Err(fail(format!(
                "the dead-letter subject `{subject}` is already captured by stream `{capturing}`; \
                 remove `errors.dlq.stream` to store dead letters there, or pick a subject that \
                 `{capturing}` does not capture"
            )));
        }
        return Ok(capturing);
    }
    match js.get_stream(name).await {
        Ok(mut existing) => {
            let info = existing.info().await.map_err(|e| fail(e.to_string()))?;
            let mut config = info.config.clone();
            config.subjects.push(subject.to_string());
            if let Err(e) = js.update_stream(config).await {
                // Another worker may have made a stream capture it meanwhile.
                if let Ok(Some(capturing)) = stream_capturing(js, subject).await
                    && (!named || capturing == name)
                {
                    return Ok(capturing);
                }
                return Err(fail(format!("cannot add the subject `{subject}`: {e}")));
            }
            Ok(name.to_string())
        }
        Err(err) => {
            if !matches!(
                err.kind(),
                jetstream::context::GetStreamErrorKind::JetStream(ref e)
                    if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
            ) {
                return Err(fail(err.to_string()));
            }
            let mut subjects: Vec<String> = default_subjects.to_vec();
            if !subjects.iter().any(|f| subject_matches(f, subject)) {
                subjects.push(subject.to_string());
            }
            let created = js
                .create_or_update_stream(stream::Config {
                    name: name.to_string(),
                    subjects: subjects.clone(),
                    storage: stream::StorageType::File,
                    ..Default::default()
                })
                .await;
            match created {
                Ok(_) => Ok(name.to_string()),
                Err(first) => {
                    // The default subjects (`dlq.>`) may overlap a stream of the user's: then
                    // the stream takes only this pipeline's subject.
                    if (subjects.len() > 1 || subjects[0] != subject)
                        && js
                            .create_or_update_stream(stream::Config {
                                name: name.to_string(),
                                subjects: vec![subject.to_string()],
                                storage: stream::StorageType::File,
                                ..Default::default()
                            })
                            .await
                            .is_ok()
                    {
                        return Ok(name.to_string());
                    }
                    if let Ok(Some(capturing)) = stream_capturing(js, subject).await
                        && (!named || capturing == name)
                    {
                        return Ok(capturing);
                    }
                    Err(fail(first.to_string()))
                }
            }
        }
    }
}

pub use weir_pipelines::subject::subject_matches;
