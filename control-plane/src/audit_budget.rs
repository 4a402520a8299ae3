//! The budget of audit rows for anonymous failed requests, so that unauthenticated traffic
//! cannot flood the audit log. Below the state that holds it and the gate that consults it.

/// The budget of audit rows for anonymous failures: at most `PER_ADDRESS` per minute per
/// source address and `TOTAL` per minute in all.
#[derive(Debug, Default)]
pub struct AnonymousAudit(std::sync::Mutex<AnonymousWindow>);

#[derive(Debug, Default)]
struct AnonymousWindow {
    started: Option<std::time::Instant>,
    total: u32,
    dropped: u64,
    per_address: std::collections::HashMap<String, u32>,
}

impl AnonymousAudit {
    const PER_ADDRESS: u32 = 30;
    const TOTAL: u32 = 600;

    /// Whether one more anonymous failure from `source` is recorded now.
    pub fn admit(&self, source: &str) -> bool {
        let now = std::time::Instant::now();
        let mut w = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if w.started
            .is_none_or(|t| now.duration_since(t) >= std::time::Duration::from_secs(60))
        {
            if w.dropped > 0 {
                tracing::warn!(
                    dropped = w.dropped,
                    "anonymous failed requests beyond the audit budget were not recorded"
                );
            }
            *w = AnonymousWindow {
                started: Some(now),
                ..Default::default()
            };
        }
        let bounded_source = crate::text::bounded(source, 64);
        let count = w.per_address.get(&bounded_source).copied().unwrap_or(0);
        if w.total >= Self::TOTAL || count >= Self::PER_ADDRESS {
            w.dropped += 1;
            return false;
        }
        w.total += 1;
        w.per_address.insert(bounded_source, count + 1);
        true
    }
}
