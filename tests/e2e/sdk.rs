//! Cloudflare's official Python SDK, unchanged, against a standalone gateway. `.ci/run` installs the SDK into a
//! virtualenv and sets `GATEHOUSE_SDK_PYTHON`; in CI the test fails without it.

use std::process::Command;

use crate::support::{Gatehouse, as_strs, mint_token, port_zero_flags};

#[test]
fn cloudflare_python_sdk_manages_gateways_through_base_url() {
    run_sdk_script("cloudflare_python_sdk.py", "cloudflare python sdk: ok");
}

#[test]
fn cloudflare_python_sdk_manages_dynamic_routes() {
    run_sdk_script("cloudflare_routes.py", "cloudflare routes sdk: ok");
}

#[test]
fn cloudflare_python_sdk_manages_datasets_and_evaluations() {
    run_sdk_script("cloudflare_datasets.py", "cloudflare datasets sdk: ok");
}

/// Runs `tests/sdk/{script}` with the SDK's base URL, an edit token and the account id against a fresh standalone
/// gateway; it must succeed and print `ok_line`. Skipped without `GATEHOUSE_SDK_PYTHON` outside CI.
fn run_sdk_script(script: &str, ok_line: &str) {
    let python = match std::env::var("GATEHOUSE_SDK_PYTHON") {
        Ok(p) if !p.is_empty() => p,
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "CI=true but GATEHOUSE_SDK_PYTHON is not set (a python with `pip install cloudflare`)"
            )
        }
        _ => {
            eprintln!(
                "GATEHOUSE_SDK_PYTHON is not set: skipping the Cloudflare SDK check {script}"
            );
            return;
        }
    };
    let account = "0123456789abcdef0123456789abcdef";
    let dir = tempfile::tempdir().unwrap();
    let gh = Gatehouse::start(&as_strs(&port_zero_flags(dir.path())), &[]);
    let token = mint_token(dir.path(), account, &["ai-gateway:edit"]);
    let path = format!("{}/tests/sdk/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(python)
        .args([&path, &gh.api_url("/client/v4"), &token, account])
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "SDK check {script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(ok_line), "{stdout}");
}
