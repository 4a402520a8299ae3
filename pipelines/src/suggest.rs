//! "Did you mean …?": the nearest known name to a misspelt one.

/// The candidate most similar to `name`, when one is similar enough to be a likely typo: a
/// small edit distance (one edit, or a quarter of the length), or a high Jaro-Winkler score.
pub(crate) fn nearest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let name = name.to_lowercase();
    candidates
        .into_iter()
        .filter_map(|c| {
            let lower = c.to_lowercase();
            let distance = strsim::damerau_levenshtein(&name, &lower);
            let similarity = strsim::jaro_winkler(&name, &lower);
            let close = distance <= (lower.chars().count() / 4).max(1) || similarity >= 0.85;
            (close && distance < lower.chars().count().max(name.chars().count())).then_some((
                distance,
                -similarity,
                c,
            ))
        })
        .min_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)))
        .map(|(_, _, c)| c)
}

#[cfg(test)]
mod tests {
    use super::nearest;

    #[test]
    fn finds_typos() {
        let fields = ["id", "next", "filter", "default"];
        assert_eq!(nearest("nxt", fields), Some("next"));
        assert_eq!(nearest("fliter", fields), Some("filter"));
        assert_eq!(nearest("defualt", fields), Some("default"));
        assert_eq!(nearest("zzz", fields), None);
        assert_eq!(nearest("ot", ["a", "out"]), Some("out"));
        assert_eq!(nearest("b", ["a", "out"]), None);
    }
}
