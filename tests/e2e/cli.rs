//! The CLI commands: tokens, openapi, migrate, and clear failures for bad settings.

use std::process::Command;

use crate::support::{BIN, Gatehouse, as_strs, cli, mint_token, port_zero_flags};

#[tokio::test]
async fn tokens_are_listed_and_revoked_from_the_cli_against_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let gh = Gatehouse::start(&as_strs(&port_zero_flags(dir.path())), &[]);
    let token = mint_token(dir.path(), "acme", &["ai-gateway:read"]);
    let url = gh.api_url("/client/v4/accounts/acme/ai-gateway/gateways");
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let d = dir.path().to_str().unwrap();
    let list = String::from_utf8(cli(&["token", "list", "--data-dir", d], &[]).stdout).unwrap();
    let line = list
        .lines()
        .find(|l| l.contains("acme") && l.contains("ai-gateway:read"))
        .expect(&list);
    let id = line.split_whitespace().next().unwrap().to_owned();
    assert!(line.contains("active"), "{line}");
    assert!(!list.contains(&token), "token text is never listed");

    cli(&["token", "revoke", &id, "--data-dir", d], &[]);
    let list = String::from_utf8(cli(&["token", "list", "--data-dir", d], &[]).stdout).unwrap();
    assert!(
        list.lines()
            .any(|l| l.starts_with(&id) && l.contains("revoked")),
        "{list}"
    );
    assert_eq!(
        http.get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        401,
        "revocation is immediate"
    );

    let unknown = Command::new(BIN)
        .args(["token", "revoke", "tok_nope", "--data-dir", d])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
}

#[test]
fn token_create_refuses_unknown_scopes_and_bad_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for args in [
        vec![
            "token",
            "create",
            "--data-dir",
            d,
            "--account",
            "acme",
            "--scope",
            "root",
        ],
        vec![
            "token",
            "create",
            "--data-dir",
            d,
            "--account",
            "a/b",
            "--scope",
            "admin",
        ],
        vec![
            "token",
            "create",
            "--data-dir",
            d,
            "--account",
            "acme",
            "--scope",
            "admin",
            "--ttl",
            "soon",
        ],
        vec!["token", "create", "--data-dir", d, "--scope", "admin"],
    ] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(out.stdout.is_empty(), "no token on failure");
        assert!(!out.stderr.is_empty(), "a reason on stderr");
    }
}

#[test]
fn openapi_prints_the_committed_document() {
    let out = cli(&["openapi"], &[]);
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let committed: serde_json::Value =
        serde_json::from_str(include_str!("../../openapi/openapi.json")).unwrap();
    assert_eq!(printed, committed);
}

/// Arguments, environment, and the text stderr must contain.
type BadSettingsCase<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

#[test]
fn bad_settings_fail_before_serving_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let cases: [BadSettingsCase; 5] = [
        (
            &["migrate", "--database-url", "mysql://x@h/db"],
            &[],
            "database URL must start with",
        ),
        (
            &[
                "control-plane",
                "--database-url",
                "sqlite:///nonexistent-dir/x/y.db",
            ],
            &[],
            "no master key",
        ),
        (
            &["control-plane", "--data-dir", d],
            &[("GATEHOUSE_MASTER_KEY", "c2hvcnQ=")],
            "master key must be 32 bytes",
        ),
        (
            &["--api-listen", "not-an-address"],
            &[],
            "invalid socket address",
        ),
        (
            &["data-plane", "--rate-limit-max-lease", "0"],
            &[],
            "0 is not in 1..=100000",
        ),
    ];
    for (args, envs, expected) in cases {
        let mut cmd = Command::new(BIN);
        cmd.args(args);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn a_busy_port_is_reported_not_ignored() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args([
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--api-listen",
            &addr,
            "--proxy-listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&addr));
}
