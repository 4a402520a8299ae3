//! Which stream captures a subject, and whether that stream takes fast batches. The streams'
//! subject filters are listed from the server at most every 30 s and matched here, so a new
//! subject (templated subjects make many) costs no request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures::StreamExt;

use crate::streams::subject_matches;

/// How long the list of streams is trusted.
const TTL: Duration = Duration::from_secs(30);
/// Subjects whose answer is remembered between refreshes, at most (then it starts over).
const MEMO_MAX: usize = 16_384;

/// The streams of the account by subject filter, refreshed from the server.
pub struct StreamRoutes {
    js: jetstream::Context,
    table: tokio::sync::Mutex<Table>,
}

#[derive(Default)]
struct Table {
    fetched: Option<Instant>,
    /// Subject filter, stream name, whether the stream allows fast batches.
    filters: Vec<(String, Arc<str>, bool)>,
    memo: HashMap<String, Option<Arc<str>>>,
}

impl StreamRoutes {
    /// Routes for the account of `js`; nothing is fetched until the first lookup.
    pub fn new(js: jetstream::Context) -> Self {
        StreamRoutes {
            js,
            table: tokio::sync::Mutex::new(Table::default()),
        }
    }

    /// For each subject, the stream that captures it when that stream takes fast batches;
    /// `None` when it does not, when no stream captures the subject, or when the streams
    /// could not be listed.
    pub async fn batched_streams<'a>(
        &self,
        subjects: impl Iterator<Item = &'a str>,
    ) -> Vec<Option<Arc<str>>> {
        let mut table = self.table.lock().await;
        if table.fetched.is_none_or(|at| at.elapsed() >= TTL) {
            table.refresh(&self.js).await;
        }
        subjects.map(|subject| table.lookup(subject)).collect()
    }

    /// Forgets the list: a stream changed under us (deleted, or its subjects changed).
    pub async fn forget(&self) {
        self.table.lock().await.fetched = None;
    }

    /// Takes no more fast batches for `stream` until the next refresh (the server said it
    /// does not allow them, whatever its listed settings say).
    pub async fn disable(&self, stream: &str) {
        let mut table = self.table.lock().await;
        for (_, name, batched) in &mut table.filters {
            if &**name == stream {
                *batched = false;
            }
        }
        table.memo.clear();
    }
}

impl Table {
    async fn refresh(&mut self, js: &jetstream::Context) {
        self.filters.clear();
        self.memo.clear();
        self.fetched = Some(Instant::now());
        let mut streams = js.streams();
        while let Some(info) = streams.next().await {
            match info {
                Ok(info) => {
                    let name: Arc<str> = Arc::from(info.config.name.as_str());
                    for filter in &info.config.subjects {
                        self.filters.push((
                            filter.clone(),
                            name.clone(),
                            info.config.allow_batch_publish,
                        ));
                    }
                }
                Err(err) => {
                    // Publish one by one until the next refresh.
                    tracing::debug!(error = %err, "cannot list streams; no fast batches for now");
                    self.filters.clear();
                    return;
                }
            }
        }
    }

    fn lookup(&mut self, subject: &str) -> Option<Arc<str>> {
        if let Some(known) = self.memo.get(subject) {
            return known.clone();
        }
        let stream = self
            .filters
            .iter()
            .find(|(filter, _, _)| subject_matches(filter, subject))
            .and_then(|(_, stream, batched)| batched.then(|| stream.clone()));
        if self.memo.len() >= MEMO_MAX {
            self.memo.clear();
        }
        self.memo.insert(subject.to_string(), stream.clone());
        stream
    }
}
