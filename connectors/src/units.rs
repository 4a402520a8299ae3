//! Durations and sizes of the spec (`500ms`, `30s`, `1MB`, `64KiB`), parsed with the pipeline
//! format's own parsers, with errors that name the field they came from.

use std::time::Duration;

use weir_pipelines::units::{parse_duration, parse_size};

use crate::ConnectorError;

/// Parses a duration such as `500ms`, `30s`, `2m` for the spec field `field`.
pub fn duration(field: &str, value: &str) -> Result<Duration, ConnectorError> {
    parse_duration(value).map_err(|reason| ConnectorError::InvalidSetting {
        field: field.to_string(),
        value: value.to_string(),
        reason,
    })
}

/// Parses a size such as `1MB`, `64KiB` or `1048576` (bytes) for the spec field `field`.
pub fn size(field: &str, value: &str) -> Result<u64, ConnectorError> {
    parse_size(value).map_err(|reason| ConnectorError::InvalidSetting {
        field: field.to_string(),
        value: value.to_string(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field() {
        assert_eq!(size("f", "64KiB").unwrap(), 65_536);
        assert_eq!(duration("f", "2m").unwrap(), Duration::from_secs(120));
        let err = size("Pipeline p: spec.execution.max_message_size", "1 parsec").unwrap_err();
        assert!(
            err.to_string().contains("spec.execution.max_message_size"),
            "{err}"
        );
    }
}
