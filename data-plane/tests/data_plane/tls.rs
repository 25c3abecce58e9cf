//! HTTPS upstreams: rustls with SNI and certificate verification, and pooled keep-alive connections.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use gatehouse_data_plane::DataPlane;
use gatehouse_mock_providers::MockProvider;
use gatehouse_shared::config::{GatewayConfigDocument, GatewayKey};
use gatehouse_shared::gateway::GatewaySettings;

use crate::harness::{RunningDataPlane, test_settings};

/// Makes a CA and a `localhost` leaf signed by it with the `openssl` command. The leaf is `CA:FALSE`: webpki
/// refuses a CA certificate used as a server certificate.
fn make_certificates(dir: &Path, name: &str) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is installed");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=gatehouse test CA",
        ],
    ]
    .concat());
    run(&[
        &["req", "-new"][..],
        &ec,
        &[
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            &format!("/CN={name}"),
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("leaf.ext"),
        format!("basicConstraints=CA:FALSE\nsubjectAltName=DNS:{name}\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.crt",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
    ]);
}

/// A TLS terminator in front of the plain-HTTP mock, counting TLS connections.
async fn tls_front(dir: &Path, backend: std::net::SocketAddr) -> (u16, Arc<AtomicUsize>) {
    use pingora::tls::{TlsAcceptor, load_certs_and_key_files};
    pingora::tls::install_default_crypto_provider();
    let cert = dir.join("leaf.crt").to_string_lossy().into_owned();
    let key = dir.join("leaf.key").to_string_lossy().into_owned();
    let (certs, key) = load_certs_and_key_files(&cert, &key).unwrap().unwrap();
    let config = pingora::tls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    // Bound through the name, so it takes the address the gateway's resolver picks first.
    let listener = tokio::net::TcpListener::bind("localhost:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&connections);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let counted = Arc::clone(&counted);
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (port, connections)
}

fn gateway() -> GatewayConfigDocument {
    let mut settings = GatewaySettings::for_default_gateway();
    settings.authentication = false;
    GatewayConfigDocument {
        schema: 1,
        key: GatewayKey::new("acme", "gw"),
        version: 1,
        internal_id: "i".into(),
        is_default: false,
        settings,
        provider_configs: vec![],
        custom_providers: vec![],
        cache_generation: 0,
        access: Default::default(),
        routes: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstreams_are_verified_by_name_and_their_connections_reused() {
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path(), "localhost");
    let mock = MockProvider::start();
    let (port, tls_connections) = tls_front(dir.path(), mock.addr()).await;

    let start = |host: &str| {
        let mut settings = test_settings();
        settings.upstream_ca_file = Some(dir.path().join("ca.crt"));
        settings.provider_base_urls = vec![("openai".into(), format!("https://{host}:{port}/v1"))];
        let dp = DataPlane::bind(settings).unwrap();
        dp.config_store().apply_gateway(&gateway(), "h").unwrap();
        dp.readiness().set_ready();
        RunningDataPlane::run(dp)
    };
    let http = reqwest::Client::new();
    let node = start("localhost");
    for _ in 0..10 {
        let resp = http
            .post(format!(
                "http://{}/v1/acme/gw/openai/chat/completions",
                node.addr
            ))
            .header("authorization", "Bearer sk")
            .body(r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(
        tls_connections.load(Ordering::SeqCst),
        1,
        "ten requests, one pooled TLS connection"
    );
    assert_eq!(mock.requests().len(), 10);

    // The same server under another name fails verification: the name is checked, not just the chain.
    let wrong_name = start("127.0.0.1");
    let resp = http
        .post(format!(
            "http://{}/v1/acme/gw/openai/chat/completions",
            wrong_name.addr
        ))
        .header("authorization", "Bearer sk")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(mock.requests().len(), 10, "nothing reached the provider");
}

#[test]
fn an_unusable_ca_file_is_refused_at_bind() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("not-pem"), "hello").unwrap();
    for path in [dir.path().join("missing"), dir.path().join("not-pem")] {
        let mut settings = test_settings();
        settings.upstream_ca_file = Some(path);
        assert!(DataPlane::bind(settings).is_err());
    }
}
