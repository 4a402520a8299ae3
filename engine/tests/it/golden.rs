//! Golden pipeline tests: every directory under `tests/golden/` holds `pipeline.yaml`,
//! `input.jsonl` (one test message per line) and `expected.jsonl` (one fate per input, as
//! `weir test --input` prints it). `WEIR_BLESS=1` rewrites the expected files (review them!).

use std::path::Path;
use weir_engine::CompiledPipeline;
use weir_engine::testing::run_jsonl;
use weir_pipelines::Resource;

fn run_case(dir: &Path) -> Result<(), String> {
    let file = dir.join("pipeline.yaml");
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let resources = weir_pipelines::load_str(&text, &file.display().to_string())
        .map_err(|d| format!("invalid pipeline:\n{d}"))?;
    let Some(Resource::Pipeline(p)) = resources.into_iter().next() else {
        return Err("pipeline.yaml holds no Pipeline".into());
    };
    let compiled = CompiledPipeline::compile(&p).map_err(|e| e.to_string())?;
    let input = std::fs::read_to_string(dir.join("input.jsonl")).map_err(|e| e.to_string())?;
    let fates = run_jsonl(&compiled, &p.spec.source.stream, &input).map_err(|e| e.to_string())?;
    let actual: String = fates.iter().map(|f| format!("{f}\n")).collect();
    let expected_file = dir.join("expected.jsonl");
    if std::env::var_os("WEIR_BLESS").is_some() {
        std::fs::write(&expected_file, &actual).map_err(|e| e.to_string())?;
        return Ok(());
    }
    let expected = std::fs::read_to_string(&expected_file).map_err(|e| {
        format!(
            "{}: {e} (run with WEIR_BLESS=1 to create it)",
            expected_file.display()
        )
    })?;
    if expected != actual {
        let diff = similar::TextDiff::from_lines(&expected, &actual)
            .unified_diff()
            .header("expected.jsonl", "actual")
            .to_string();
        return Err(format!("output differs:\n{diff}"));
    }
    Ok(())
}

#[test]
fn golden_cases() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .expect("tests/golden exists")
        .map(|e| e.expect("readable").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 8, "golden cases missing: {dirs:?}");
    let failures: Vec<String> = dirs
        .iter()
        .filter_map(|d| run_case(d).err().map(|e| format!("{}: {e}", d.display())))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
