//! Durations (`500ms`, `30s`, `5m`, `2h`, `7d`) and sizes (`8MB`, `512KB`, `1GiB`, plain bytes)
//! as written in pipeline files.

use std::time::Duration;

/// Parses a duration: a number with a unit (`ns`, `us`, `ms`, `s`, `m`, `h`, `d`), or several
/// such parts (`1h30m`). A bare number is refused, because its unit would be a guess.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("empty duration; write e.g. `500ms`, `30s`, `5m`, `2h` or `7d`".into());
    }
    if trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "duration `{text}` has no unit; write e.g. `{trimmed}s` or `{trimmed}ms`"
        ));
    }
    humantime::parse_duration(trimmed).map_err(|err| {
        format!("invalid duration `{text}` ({err}); write e.g. `500ms`, `30s`, `5m`, `2h` or `7d`")
    })
}

/// Parses a size in bytes: plain bytes (`1048576`), or a number with a unit: `B`, decimal
/// `KB`/`MB`/`GB`/`TB` (powers of 1000) or binary `KiB`/`MiB`/`GiB`/`TiB` (powers of 1024).
/// Units are case-insensitive; `K`, `M`, `G`, `T` are the decimal ones.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let hint = "write e.g. `1048576`, `512KB`, `8MB` or `1GiB`";
    if digits.is_empty() {
        return Err(format!(
            "invalid size `{text}`: it must start with a number; {hint}"
        ));
    }
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("size `{text}` is too large"))?;
    let unit = unit.trim();
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "ki" | "kib" => 1 << 10,
        "mi" | "mib" => 1 << 20,
        "gi" | "gib" => 1 << 30,
        "ti" | "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "invalid size `{text}`: unknown unit `{unit}` (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB); {hint}"
            ));
        }
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("size `{text}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("30").unwrap_err().contains("no unit"));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("512KB"), Ok(512_000));
        assert_eq!(parse_size("8MB"), Ok(8_000_000));
        assert_eq!(parse_size("8mb"), Ok(8_000_000));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("4 KiB"), Ok(4096));
        assert!(parse_size("MB").is_err());
        assert!(parse_size("8XB").unwrap_err().contains("unknown unit"));
        assert!(parse_size("99999999999999999999").is_err());
        assert!(parse_size("99999999999TiB").is_err());
        assert!(parse_size("-1").is_err());
    }
}
