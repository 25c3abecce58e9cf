//! OpenAI's and Anthropic's official Python SDKs read the mock, unchanged (`tests/sdk_check.py`). Runs when
//! `GATEHOUSE_SDK_PYTHON` names a python with `openai` and `anthropic` installed; skipped otherwise.

use std::process::Command;

use gatehouse_mock_providers::MockProvider;

#[test]
fn the_official_python_sdks_parse_every_format_and_error_of_the_mock() {
    let Some(python) = std::env::var("GATEHOUSE_SDK_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
    else {
        eprintln!("GATEHOUSE_SDK_PYTHON is not set: skipping the OpenAI/Anthropic SDK check");
        return;
    };
    let has_sdks = Command::new(&python)
        .args(["-c", "import openai, anthropic"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_sdks {
        eprintln!("{python} lacks `openai` or `anthropic`: skipping the SDK check");
        return;
    }
    let mock = MockProvider::start();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk_check.py");
    let out = Command::new(python)
        .args([script, &mock.base_url()])
        .output()
        .expect("run python");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
