//! Durations and sizes as written in pipeline files (`500ms`, `30s`, `1MB`, `64KiB`), parsed
//! into values with errors that name the field.

use std::time::Duration;

use crate::ConnectorError;

/// Parses a duration such as `500ms`, `30s`, `2m` for the spec field `field`.
pub fn duration(field: &str, value: &str) -> Result<Duration, ConnectorError> {
    humantime::parse_duration(value.trim()).map_err(|err| ConnectorError::InvalidSetting {
        field: field.to_string(),
        value: value.to_string(),
        reason: format!("{err}; write a duration such as 500ms, 30s or 2m"),
    })
}

/// Parses a size such as `1MB`, `64KiB` or `1048576` (bytes) for the spec field `field`.
pub fn size(field: &str, value: &str) -> Result<u64, ConnectorError> {
    let text = value.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let invalid = |reason: &str| ConnectorError::InvalidSetting {
        field: field.to_string(),
        value: value.to_string(),
        reason: format!("{reason}; write a size such as 1MB, 512KiB or 1048576"),
    };
    let number: f64 = number.parse().map_err(|_| invalid("no number"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        _ => return Err(invalid("unknown unit")),
    };
    if number < 0.0 || !number.is_finite() {
        return Err(invalid("not a positive number"));
    }
    Ok((number * factor as f64).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(size("f", "1MB").unwrap(), 1_000_000);
        assert_eq!(size("f", "64KiB").unwrap(), 65_536);
        assert_eq!(size("f", "1048576").unwrap(), 1_048_576);
        assert!(size("f", "1 parsec").is_err());
        assert!(size("f", "MB").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(duration("f", "500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(duration("f", "2m").unwrap(), Duration::from_secs(120));
        assert!(duration("f", "soon").is_err());
    }
}
