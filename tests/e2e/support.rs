//! Running the real binary: start it, read the listen lines it prints, stop it.

use std::io::{BufRead as _, BufReader};

use diesel::{Connection as _, RunQueryDsl as _};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

/// A running `gatehouse` process and what it printed on start.
pub struct Gatehouse {
    child: Child,
    pub api: Option<String>,
    pub inference: Option<String>,
    /// Every stdout line printed up to the listen lines (the first-start token is among them).
    pub banner: Vec<String>,
}

impl Gatehouse {
    /// Starts `gatehouse ARGS…` and waits until it has printed every listen line that `mode` prints.
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> Gatehouse {
        Self::start_with_log(args, envs, None)
    }

    /// Like [`Gatehouse::start`], with stderr (the tracing output) written to `log` when given.
    pub fn start_with_log(args: &[&str], envs: &[(&str, &str)], log: Option<&Path>) -> Gatehouse {
        let stderr = match log {
            Some(path) => Stdio::from(std::fs::File::create(path).expect("create the log file")),
            None => Stdio::inherit(),
        };
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .env("GATEHOUSE_LOG", "warn");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start gatehouse");
        let stdout = child.stdout.take().unwrap();
        let wants_api = !args.contains(&"data-plane");
        let wants_inference = !args.contains(&"control-plane");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    // Keep draining so the process never blocks on a full pipe.
                    continue;
                }
            }
        });
        let mut g = Gatehouse {
            child,
            api: None,
            inference: None,
            banner: Vec::new(),
        };
        while (wants_api && g.api.is_none()) || (wants_inference && g.inference.is_none()) {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| {
                    let status = g.child.try_wait();
                    panic!(
                        "gatehouse did not print its listen lines (status {status:?}); saw {:?}",
                        g.banner
                    )
                });
            if let Some(addr) = line.strip_prefix("management API listening on http://") {
                g.api = Some(addr.to_owned());
            } else if let Some(addr) = line.strip_prefix("inference listening on http://") {
                g.inference = Some(addr.to_owned());
            }
            g.banner.push(line);
        }
        g
    }

    pub fn api_url(&self, path: &str) -> String {
        format!(
            "http://{}{}",
            self.api.as_ref().expect("API listener"),
            path
        )
    }

    pub fn inference_url(&self, path: &str) -> String {
        format!(
            "http://{}{}",
            self.inference.as_ref().expect("inference listener"),
            path
        )
    }

    /// The process id (to send other signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGKILL (no shutdown work at all) and waits for the process to exit.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("gatehouse did not stop within 15 s of SIGTERM");
    }
}

impl Drop for Gatehouse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a CLI command to completion.
pub fn cli(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env("GATEHOUSE_LOG", "warn");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run gatehouse");
    assert!(
        out.status.success(),
        "gatehouse {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `gatehouse token create` against a data dir; returns the token.
pub fn mint_token(data_dir: &Path, account: &str, scopes: &[&str]) -> String {
    let dir = data_dir.to_str().unwrap();
    let mut args = vec!["token", "create", "--data-dir", dir, "--account", account];
    for s in scopes {
        args.extend(["--scope", s]);
    }
    let out = cli(&args, &[]);
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(
        token.split('.').count(),
        3,
        "stdout is only the token: {token:?}"
    );
    token
}

/// Flags for port-0 listeners and a quick stop.
pub fn port_zero_flags(data_dir: &Path) -> Vec<String> {
    vec![
        "--data-dir".into(),
        data_dir.to_str().unwrap().into(),
        "--api-listen".into(),
        "127.0.0.1:0".into(),
        "--proxy-listen".into(),
        "127.0.0.1:0".into(),
        "--shutdown-grace-period".into(),
        "0s".into(),
    ]
}

pub fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The PostgreSQL URL for split-mode tests: `None` outside CI when unset; a failure in CI.
pub fn test_database_url() -> Option<String> {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but TEST_DATABASE_URL is not set")
        }
        _ => {
            eprintln!("TEST_DATABASE_URL is not set: skipping the PostgreSQL end-to-end test");
            None
        }
    }
}

/// A PostgreSQL database of the test's own, dropped at the end.
pub struct FreshDatabase {
    admin_url: String,
    name: String,
    pub url: String,
}

impl FreshDatabase {
    pub fn create(admin_url: &str) -> Self {
        let name = format!("gh_e2e_{}", uuid_like());
        let mut conn =
            diesel::PgConnection::establish(admin_url).expect("connect to TEST_DATABASE_URL");
        diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .unwrap();
        let root = admin_url
            .rsplit_once('/')
            .map(|(r, _)| r)
            .unwrap_or(admin_url);
        FreshDatabase {
            admin_url: admin_url.to_owned(),
            url: format!("{root}/{name}"),
            name,
        }
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        if let Ok(mut conn) = diesel::PgConnection::establish(&self.admin_url) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn);
        }
    }
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}{:x}", nanos, std::process::id())
}

/// The master key split-mode tests share between processes.
pub const MASTER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
