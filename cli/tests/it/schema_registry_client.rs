//! Confluent's Python `SchemaRegistryClient` (PyPI `confluent-kafka`, installed by
//! `deploy/setup.sh` into `.tools/sr-venv`) against a real `weir serve`: the script
//! `schema_registry_client.py` registers, fetches, checks compatibility, gets latest and
//! serializes with tenant A, and checks that tenant B and A's viewer are refused.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use serde_json::json;

use crate::fleet_api::serve_with_key;
use crate::fleet_support::block_on;
use crate::tenants_e2e::{TenantApi, create_tenant};

const ADMIN_KEY: &str = "weir_schema-registry-client-admin-key-0123456789";

/// The venv's Python: `WEIR_SR_PYTHON`, else `.tools/sr-venv/bin/python` of the repository.
pub(crate) fn python() -> Result<PathBuf> {
    let path = std::env::var_os("WEIR_SR_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/sr-venv/bin/python")
        });
    if !path.exists() {
        bail!(
            "{} is missing: run deploy/setup.sh (it installs confluent-kafka into \
             .tools/sr-venv), or set WEIR_SR_PYTHON to a Python with confluent-kafka[avro,protobuf,schemaregistry]",
            path.display()
        );
    }
    Ok(path)
}

#[test]
fn confluent_python_client_works_against_weir_serve() -> Result<()> {
    let python = python()?;
    let dir = tempfile::tempdir()?;
    block_on(run(&python, dir.path()))
}

async fn run(python: &Path, dir: &Path) -> Result<()> {
    let (serve, admin) = serve_with_key(dir, None, ADMIN_KEY).await?;
    let base = admin.base.clone();
    let (_, key_a) = create_tenant(&admin, "tenant-a").await?;
    let (_, key_b) = create_tenant(&admin, "tenant-b").await?;
    let a = TenantApi {
        key: key_a.clone(),
        ..admin
    };
    let user = a
        .ok(
            reqwest::Method::POST,
            "/users",
            Some(json!({"email": "viewer@a.test", "role": "viewer"})),
        )
        .await?;
    let viewer = a
        .ok(
            reqwest::Method::POST,
            "/api-keys",
            Some(json!({"name": "viewer", "user_id": user["id"]})),
        )
        .await?;
    let viewer = viewer["key"].as_str().context("viewer key")?;

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/schema_registry_client.py");
    let out = Command::new(python)
        .arg(&script)
        .args([&base, &key_a, &key_b, viewer])
        .output()
        .context("running the Python client")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !stdout.contains("schema registry client: ok") {
        bail!(
            "the Python client failed ({}):\n{stdout}\n{stderr}\nweir serve log:\n{}",
            out.status,
            serve.log_text()
        );
    }
    cli_commands(&base, &key_a, dir)
}

/// `weir schema register|get|ls|check|delete` against the same server, as tenant A.
fn cli_commands(base: &str, key: &str, dir: &Path) -> Result<()> {
    let weir = |args: &[&str]| -> Result<(i32, String)> {
        let out = Command::new(crate::fleet_support::weir_binary())
            .args(args)
            .env("WEIR_URL", base)
            .env("WEIR_API_KEY", key)
            .env("HOME", dir)
            .output()?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok((out.status.code().unwrap_or(-1), text))
    };
    let v1 = dir.join("customer.avsc");
    std::fs::write(
        &v1,
        r#"{"type":"record","name":"Customer","fields":[{"name":"id","type":"string"}]}"#,
    )?;
    let v2 = dir.join("customer-v2.avsc");
    std::fs::write(
        &v2,
        r#"{"type":"record","name":"Customer","fields":[{"name":"id","type":"string"},{"name":"tier","type":"int"}]}"#,
    )?;
    let (v1, v2) = (v1.to_str().context("UTF-8")?, v2.to_str().context("UTF-8")?);
    let expect = |(code, text): (i32, String), want: i32, needle: &str| -> Result<()> {
        if code != want || !text.contains(needle) {
            bail!("expected exit {want} and {needle:?}, got {code}: {text}");
        }
        Ok(())
    };
    expect(
        weir(&["schema", "register", "customers", v1])?,
        0,
        "customers version 1",
    )?;
    expect(weir(&["schema", "ls"])?, 0, "customers")?;
    expect(weir(&["schema", "ls", "customers"])?, 0, "AVRO")?;
    expect(
        weir(&["schema", "get", "customers"])?,
        0,
        r#""name":"Customer""#,
    )?;
    // A schema that uses another subject's type: `--ref NAME=SUBJECT:VERSION`.
    let order = dir.join("order.avsc");
    std::fs::write(
        &order,
        r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"customer","type":"Customer"}]}"#,
    )?;
    let order = order.to_str().context("UTF-8")?;
    expect(
        weir(&["schema", "register", "orders", order])?,
        2,
        "Customer",
    )?;
    expect(
        weir(&[
            "schema",
            "register",
            "orders",
            order,
            "--ref",
            "Customer=customers:1",
        ])?,
        0,
        "orders version 1",
    )?;
    expect(
        weir(&["schema", "register", "orders", order, "--ref", "Customer"])?,
        2,
        "NAME=SUBJECT:VERSION",
    )?;
    expect(
        weir(&[
            "schema",
            "delete",
            "orders",
            "--version",
            "1",
            "--permanent",
        ])?,
        2,
        "",
    )?;
    expect(weir(&["schema", "delete", "orders"])?, 0, "deleted")?;
    expect(
        weir(&["schema", "delete", "orders", "--permanent"])?,
        0,
        "deleted",
    )?;
    expect(weir(&["schema", "check", "customers", v2])?, 1, "'tier'")?;
    expect(
        weir(&["schema", "register", "customers", v2])?,
        2,
        "incompatible",
    )?;
    expect(
        weir(&["schema", "delete", "customers"])?,
        0,
        "versions [1] deleted",
    )?;
    expect(weir(&["schema", "get", "customers"])?, 2, "not found")?;
    Ok(())
}
