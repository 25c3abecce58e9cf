//! Cloudflare's official Python SDK, unchanged, against a standalone gateway. `.ci/run` installs the SDK into a
//! virtualenv and sets `GATEHOUSE_SDK_PYTHON`; in CI the test fails without it.

use std::process::Command;

use crate::support::{Gatehouse, as_strs, mint_token, port_zero_flags};

#[test]
fn cloudflare_python_sdk_manages_gateways_through_base_url() {
    let python = match std::env::var("GATEHOUSE_SDK_PYTHON") {
        Ok(p) if !p.is_empty() => p,
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "CI=true but GATEHOUSE_SDK_PYTHON is not set (a python with `pip install cloudflare`)"
            )
        }
        _ => {
            eprintln!("GATEHOUSE_SDK_PYTHON is not set: skipping the Cloudflare SDK check");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let gh = Gatehouse::start(&as_strs(&port_zero_flags(dir.path())), &[]);
    let token = mint_token(
        dir.path(),
        "0123456789abcdef0123456789abcdef",
        &["ai-gateway:edit"],
    );
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/sdk/cloudflare_python_sdk.py"
    );
    let out = Command::new(python)
        .args([
            script,
            &gh.api_url("/client/v4"),
            &token,
            "0123456789abcdef0123456789abcdef",
        ])
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "SDK check failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("cloudflare python sdk: ok"), "{stdout}");
}

#[test]
fn cloudflare_python_sdk_manages_dynamic_routes() {
    let python = match std::env::var("GATEHOUSE_SDK_PYTHON") {
        Ok(p) if !p.is_empty() => p,
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "CI=true but GATEHOUSE_SDK_PYTHON is not set (a python with `pip install cloudflare`)"
            )
        }
        _ => {
            eprintln!("GATEHOUSE_SDK_PYTHON is not set: skipping the Cloudflare SDK routes check");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let gh = Gatehouse::start(&as_strs(&port_zero_flags(dir.path())), &[]);
    let token = mint_token(
        dir.path(),
        "0123456789abcdef0123456789abcdef",
        &["ai-gateway:edit"],
    );
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/sdk/cloudflare_routes.py"
    );
    let out = Command::new(python)
        .args([
            script,
            &gh.api_url("/client/v4"),
            &token,
            "0123456789abcdef0123456789abcdef",
        ])
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "SDK routes check failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("cloudflare routes sdk: ok"), "{stdout}");
}
