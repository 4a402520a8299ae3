//! What `weir dev` prints: the banner (where the API, console, NATS and metrics are, and the
//! line to paste into another shell), then a status screen every few seconds.

use std::path::Path;

use weir_pipelines::fleet::PipelineReport;

/// Prints where everything is and how to use it.
pub(super) fn print_banner(
    base: &str,
    api_key: &str,
    nats_url: &str,
    creds_file: Option<&Path>,
    rate: u64,
) {
    println!("[weir dev] API:  {base}/api/v1   (API key: {api_key})");
    if weir_control_plane::console::is_built() {
        println!("[weir dev] Console: {base}/   (log in with the API key above)");
    } else {
        println!(
            "[weir dev] Console: {base}/ is not built: run `bash deploy/setup.sh` (needs npm), then rebuild weir"
        );
    }
    if let Some(creds_file) = creds_file {
        println!(
            "[weir dev] NATS: {nats_url}   (the dev tenant's account: nats --creds {})",
            creds_file.display()
        );
    } else {
        println!("[weir dev] NATS: {nats_url}");
    }
    println!("[weir dev] metrics: {base}/metrics (control plane and the in-process worker)");
    println!("[weir dev] to use the CLI from another shell, paste:");
    println!("  export WEIR_URL={base} WEIR_API_KEY={api_key}");
    println!(
        "[weir dev] sample orders: {rate} per second on orders.created.<region>; Ctrl-C stops"
    );
}

/// The status screen: one line per pipeline each tick, and each new error once (not again
/// every tick while it stays the last error).
#[derive(Default)]
pub(super) struct StatusScreen {
    /// The last error shown, per pipeline.
    shown_errors: std::collections::HashMap<String, String>,
}

impl StatusScreen {
    pub(super) fn render(&mut self, reports: &[PipelineReport], generated: u64) -> String {
        let mut out = format!("[weir dev] sample orders published: {generated}\n");
        let width = reports.iter().map(|p| p.pipeline.len()).max().unwrap_or(0);
        for p in reports {
            let c = &p.counters;
            out.push_str(&format!(
                "  {:width$}  {:8} v{:<3} in {:>8}  out {:>8}  filtered {:>7}  dlq {:>6}  lag {:>6}\n",
                p.pipeline,
                p.state,
                p.version,
                c.messages_in,
                c.messages_out,
                c.filtered,
                c.dead_lettered,
                p.lag
            ));
        }
        for p in reports {
            if let Some((error, _)) = &p.last_error
                && self.shown_errors.get(&p.pipeline) != Some(error)
            {
                // The first line of the error, once.
                let first = error.lines().next().unwrap_or_default();
                out.push_str(&format!("  ! {}: {first}\n", p.pipeline));
                self.shown_errors.insert(p.pipeline.clone(), error.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(pipeline: &str, state: &str, error: Option<&str>) -> PipelineReport {
        PipelineReport {
            tenant: "default".into(),
            pipeline: pipeline.into(),
            version: 1,
            state: state.into(),
            counters: Default::default(),
            lag: 0,
            ack_pending: 0,
            last_error: error.map(|e| (e.to_string(), 1)),
            last_dead_letter: None,
        }
    }

    #[test]
    fn the_screen_has_one_line_per_pipeline_and_shows_each_error_once() {
        let mut screen = StatusScreen::default();
        let error = "source stream `NOPE` not found\ncaused by: 404";
        let reports = [
            report("order-processing", "running", None),
            report("broken", "failed", Some(error)),
        ];
        let first = screen.render(&reports, 10);
        let lines: Vec<&str> = first.lines().collect();
        assert_eq!(lines.len(), 4, "{first}");
        assert!(
            lines[1].trim_start().starts_with("order-processing"),
            "{first}"
        );
        assert!(lines[2].trim_start().starts_with("broken "), "{first}");
        assert_eq!(
            lines[3], "  ! broken: source stream `NOPE` not found",
            "the error's first line, once: {first}"
        );
        // The next tick: the same error is not printed again.
        let second = screen.render(&reports, 20);
        assert_eq!(second.lines().count(), 3, "{second}");
        assert!(!second.contains('!'), "{second}");
    }
}
