//! `load_str` never panics: arbitrary text, and example files with random edits.

use proptest::prelude::*;
use weir_pipelines::load_str;

use crate::crate_path;

fn examples() -> Vec<String> {
    [
        "examples/order-processing.yaml",
        "examples/order-routing.yaml",
        "tests/fixtures/three-problems.yaml",
    ]
    .iter()
    .map(|f| std::fs::read_to_string(crate_path(f)).unwrap())
    .collect()
}

/// Characters that matter to YAML, JSON, SQL and templates.
const SPECIAL: &[char] = &[
    ':', '-', '[', ']', '{', '}', ',', '\'', '"', '#', '&', '*', '!', '|', '>', '\n', ' ', '\t',
    '.', '%', '@', '`', '\\', '?', '~',
];

#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, String),
    Duplicate(usize, usize),
    Special(usize, usize),
}

fn apply(text: &str, edit: &Edit) -> String {
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len().max(1);
    let mut out = chars.clone();
    match edit {
        Edit::Delete(at, len) => {
            let at = at % n;
            let end = (at + len % 40).min(out.len());
            out.drain(at..end);
        }
        Edit::Insert(at, s) => {
            let at = at % n;
            out.splice(at..at, s.chars());
        }
        Edit::Duplicate(at, len) => {
            let at = at % n;
            let end = (at + len % 200).min(chars.len());
            out.splice(at..at, chars[at..end].iter().copied());
        }
        Edit::Special(at, which) => {
            let at = at % n;
            if at < out.len() {
                out[at] = SPECIAL[which % SPECIAL.len()];
            }
        }
    }
    out.into_iter().collect()
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<usize>()).prop_map(|(a, l)| Edit::Delete(a, l)),
        (any::<usize>(), ".{0,12}").prop_map(|(a, s)| Edit::Insert(a, s)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, l)| Edit::Duplicate(a, l)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, w)| Edit::Special(a, w)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = load_str(&text, "arbitrary.yaml");
    }

    #[test]
    fn yamlish_text_never_panics(text in "[a-z:{}\\[\\],'\"#&*!|>.% \n-]{0,200}") {
        let _ = load_str(&text, "yamlish.yaml");
    }

    #[test]
    fn edited_examples_never_panic(which in 0usize..3, edits in proptest::collection::vec(edit(), 1..6)) {
        let mut text = examples()[which].clone();
        for e in &edits {
            text = apply(&text, e);
        }
        match load_str(&text, "edited.yaml") {
            Ok(_) => {}
            Err(diags) => {
                prop_assert!(!diags.is_empty());
                for d in &diags {
                    // Every diagnostic points inside the file.
                    // A lone `\r` breaks a line in YAML too.
                    let lines = text.matches('\n').count() + text.matches('\r').count() + 1;
                    prop_assert!(d.line >= 1 && d.line <= lines + 1, "{d} (file has {lines} lines)");
                    prop_assert!(d.column >= 1, "{d}");
                }
            }
        }
    }
}

#[test]
fn deep_nesting_and_huge_aliases_are_refused_without_crashing() {
    for text in [
        "[".repeat(100_000),
        "{a: ".repeat(100_000),
        format!("x: {}1{}", "[".repeat(60), "]".repeat(60)),
        format!(
            "apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata: {{name: x}}\nspec:\n  source: {{stream: S}}\n  nodes:\n    - id: a\n      filter: \"{}1{}\"\n      next: b\n",
            "(".repeat(5000),
            ")".repeat(5000)
        ),
    ] {
        assert!(load_str(&text, "deep.yaml").is_err());
    }
}
