//! The OpenAI-compatible endpoint of the real binary, driven by clients applications use, unchanged: OpenAI's
//! official Python SDK (`tests/sdk/openai_compat.py`: chat, streams, tools, embeddings, the Responses API and the
//! model list), LangChain's and LlamaIndex's OpenAI clients (`tests/sdk/frameworks_compat.py`) and OpenAI's
//! TypeScript SDK on Node (`tests/sdk/ts/openai_compat.mjs`), to OpenAI, Anthropic, Gemini and Cohere mocks.
//!
//! `.ci/run` provides the clients: `GATEHOUSE_SDK_PYTHON` (a virtualenv with OpenAI's SDK), `GATEHOUSE_FRAMEWORKS_PYTHON` (one with LangChain and LlamaIndex),
//! `GATEHOUSE_SDK_NODE` (node) and `GATEHOUSE_SDK_TS_DIR` (`tests/sdk/ts` after `npm ci`). Without them a test
//! is skipped, except in CI, where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use gatehouse_mock_providers::MockProvider;
use serde_json::json;

use crate::support::{Gatehouse, as_strs, mint_token, port_zero_flags};

#[tokio::test]
async fn the_openai_sdk_works_unchanged_through_compat() {
    let Some(python) = client_env("GATEHOUSE_SDK_PYTHON", "the OpenAI Python SDK check") else {
        return;
    };
    let gw = CompatGateway::start().await;
    gw.run_script(
        Command::new(python).arg(sdk_path("openai_compat.py")),
        "the OpenAI Python SDK",
        "openai compat sdk: ok",
    );
}

#[tokio::test]
async fn langchain_and_llamaindex_work_unchanged_through_compat() {
    let Some(python) = client_env(
        "GATEHOUSE_FRAMEWORKS_PYTHON",
        "the LangChain and LlamaIndex check",
    ) else {
        return;
    };
    let gw = CompatGateway::start().await;
    // The script points tiktoken at an empty cache of its own and refuses any connection beyond loopback, so a code
    // path that would download encodings or data fails here rather than passing on a machine that is online.
    gw.run_script(
        Command::new(python).arg(sdk_path("frameworks_compat.py")),
        "LangChain and LlamaIndex",
        "frameworks compat: ok",
    );
}

#[tokio::test]
async fn the_openai_typescript_sdk_works_unchanged_through_compat() {
    let Some(node) = client_env("GATEHOUSE_SDK_NODE", "the OpenAI TypeScript SDK check") else {
        return;
    };
    let dir = std::env::var_os("GATEHOUSE_SDK_TS_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| sdk_path("ts"), PathBuf::from);
    assert!(
        dir.join("node_modules/openai/package.json").is_file(),
        "GATEHOUSE_SDK_NODE is set but {} has no node_modules/openai: run `npm ci` there (.ci/run does)",
        dir.display()
    );
    let gw = CompatGateway::start().await;
    gw.run_script(
        Command::new(node)
            .arg(dir.join("openai_compat.mjs"))
            .current_dir(&dir),
        "the OpenAI TypeScript SDK",
        "openai ts sdk: ok",
    );
}

/// The client a test drives, from `var`: `None` (the test is skipped) when unset outside CI; a failure in CI.
fn client_env(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but {var} is not set (.ci/run sets it)")
        }
        _ => {
            eprintln!("{var} is not set: skipping {what} of /compat");
            None
        }
    }
}

/// A file or directory under `tests/sdk/`.
fn sdk_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sdk")
        .join(name)
}

/// The real binary in standalone mode with openai, anthropic, google-ai-studio and cohere routed to one mock, and
/// gateway `gw` of account `acme` serving `/compat`.
struct CompatGateway {
    gh: Gatehouse,
    _mock: MockProvider,
    _dir: tempfile::TempDir,
}

impl CompatGateway {
    async fn start() -> CompatGateway {
        let mock = MockProvider::start();
        let dir = tempfile::tempdir().unwrap();
        let mut args = port_zero_flags(dir.path());
        for (slug, base) in [
            ("openai", mock.url("/v1")),
            ("anthropic", mock.base_url()),
            ("google-ai-studio", mock.base_url()),
            ("cohere", mock.base_url()),
        ] {
            args.push("--provider-base-url".into());
            args.push(format!("{slug}={base}"));
        }
        let gh = Gatehouse::start(&as_strs(&args), &[]);
        let http = reqwest::Client::new();
        let edit = mint_token(dir.path(), "acme", &["ai-gateway:edit"]);
        let created = http
            .post(gh.api_url("/client/v4/accounts/acme/ai-gateway/gateways"))
            .bearer_auth(&edit)
            .json(&json!({"id": "gw", "cache_invalidate_on_update": true, "cache_ttl": 0, "collect_logs": true,
                "rate_limiting_interval": 0, "rate_limiting_limit": 0}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 200);
        // The gateway reaches the data plane asynchronously.
        let url = gh.inference_url("/v1/acme/gw/compat/chat/completions");
        let body =
            json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]});
        let started = std::time::Instant::now();
        loop {
            let status = http
                .post(&url)
                .bearer_auth("sk")
                .json(&body)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            if status == 200 {
                break;
            }
            assert!(
                started.elapsed().as_secs() < 10,
                "compat still answers {status}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        CompatGateway {
            gh,
            _mock: mock,
            _dir: dir,
        }
    }

    /// Runs a client script with `INFERENCE_BASE acme gw` appended; it must succeed and print `ok_line`.
    fn run_script(&self, cmd: &mut Command, what: &str, ok_line: &str) {
        let out = cmd
            .args([&self.gh.inference_url(""), "acme", "gw"])
            .output()
            .unwrap_or_else(|e| panic!("run {what}'s script ({:?}): {e}", cmd.get_program()));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{what} through /compat failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(ok_line), "{stdout}");
    }
}
