//! Which stream captures a subject, and whether that stream takes fast batches. The streams'
//! subject filters are listed from the server at most every 30 s and matched here, so a new
//! subject (templated subjects make many) costs no request. While one caller lists the
//! streams, the others keep using the last list.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures::StreamExt;

use crate::streams::subject_matches;

/// How long the list of streams is trusted.
const TTL: Duration = Duration::from_secs(30);
/// Subjects whose answer is remembered between refreshes, at most (then it starts over).
const MEMO_MAX: usize = 16_384;

/// Subject filter, stream name, whether the stream allows fast batches.
type Filter = (String, Arc<str>, bool);

/// The streams of the account by subject filter, refreshed from the server.
pub struct StreamRoutes {
    js: jetstream::Context,
    table: Mutex<Table>,
    refreshing: AtomicBool,
}

#[derive(Default)]
struct Table {
    fetched: Option<Instant>,
    filters: Vec<Filter>,
    memo: HashMap<String, Option<Arc<str>>>,
}

/// Lets the next caller refresh again however the refresh ends (a dropped future included).
struct Refreshing<'a>(&'a AtomicBool);

impl Drop for Refreshing<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl StreamRoutes {
    /// Routes for the account of `js`; nothing is fetched until the first lookup.
    pub fn new(js: jetstream::Context) -> Self {
        StreamRoutes {
            js,
            table: Mutex::new(Table::default()),
            refreshing: AtomicBool::new(false),
        }
    }

    /// For each subject, the stream that captures it when that stream takes fast batches;
    /// `None` when it does not, when no stream captures the subject, or when the streams
    /// could not be listed.
    pub async fn batched_streams<'a>(
        &self,
        subjects: impl Iterator<Item = &'a str>,
    ) -> Vec<Option<Arc<str>>> {
        let stale = self.lock().fetched.is_none_or(|at| at.elapsed() >= TTL);
        if stale && !self.refreshing.swap(true, Ordering::AcqRel) {
            let _refreshing = Refreshing(&self.refreshing);
            let filters = list(&self.js).await;
            let mut table = self.lock();
            table.filters = filters;
            table.memo.clear();
            table.fetched = Some(Instant::now());
        }
        let mut table = self.lock();
        subjects.map(|subject| table.lookup(subject)).collect()
    }

    /// Forgets the list: a stream changed under us (deleted, or its subjects changed).
    pub fn forget(&self) {
        self.lock().fetched = None;
    }

    /// Takes no more fast batches for `stream` until the next refresh (the server said it
    /// does not allow them, whatever its listed settings say).
    pub fn disable(&self, stream: &str) {
        let mut table = self.lock();
        for (_, name, batched) in &mut table.filters {
            if &**name == stream {
                *batched = false;
            }
        }
        table.memo.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().expect("stream routes lock")
    }
}

/// The subject filters of every stream of the account; none when they cannot be listed
/// (messages then go one by one until the next refresh).
async fn list(js: &jetstream::Context) -> Vec<Filter> {
    let mut filters = Vec::new();
    let mut streams = js.streams();
    while let Some(info) = streams.next().await {
        match info {
            Ok(info) => {
                let name: Arc<str> = Arc::from(info.config.name.as_str());
                for filter in &info.config.subjects {
                    filters.push((
                        filter.clone(),
                        name.clone(),
                        info.config.allow_batch_publish,
                    ));
                }
            }
            Err(err) => {
                tracing::debug!(error = %err, "cannot list streams; no fast batches for now");
                return Vec::new();
            }
        }
    }
    filters
}

impl Table {
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
