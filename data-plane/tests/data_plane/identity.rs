//! External identity on the request path (issue 14, `identity_providers`): JWTs of an identity provider whose
//! JWKS a local server publishes (RS256 and ES256), key rotation through a bounded refresh, the refusals (wrong
//! audience, expired, bad signature, unknown issuer), the user's and team's limits applied to such tokens, and
//! DPoP-bound tokens (RFC 9449): a valid proof, a wrong `htu`, a stale `iat`, a replayed `jti` (on another node
//! sharing Redis too), a wrong key binding, and bearer use of a bound token.

mod keys;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use gatehouse_bus::replay::{RedisReplayCache, ReplayCache};
use gatehouse_bus::testing::{delete_prefix, test_redis_url, unique_prefix};
use gatehouse_data_plane::DataPlane;
use gatehouse_data_plane::logs::LogSink;
use gatehouse_mock_providers::MockProvider;
use gatehouse_shared::access::{AccessEntries, Limits, NewSecret, SubjectEntry, VirtualKeyEntry};
use gatehouse_shared::config::GatewayConfigDocument;
use gatehouse_shared::crypto::MasterKey;
use gatehouse_shared::gateway::{DpopMode, IdentityProvider, JwtAlgorithm};
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sha2::Digest as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::harness::{RunningDataPlane, test_settings};
use crate::node::{MASTER, stored_key};
use crate::policy_node::{PolicyNode, gateway};

const ISSUER: &str = "https://idp.example.com/realms/acme";
const AUDIENCE: &str = "gatehouse";
const PATH: &str = "/v1/acme/idp/openai/chat/completions";

/// A signing key of the identity provider, or a client's DPoP key.
struct Key {
    kid: &'static str,
    alg: Algorithm,
    encoding: EncodingKey,
}

impl Key {
    fn rsa(kid: &'static str, pem: &str) -> Key {
        Key {
            kid,
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        }
    }

    fn ec(kid: &'static str, pem: &str) -> Key {
        Key {
            kid,
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
        }
    }

    /// The public half as a JWKS entry.
    fn jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.encoding, self.alg).unwrap();
        jwk.common.key_id = Some(self.kid.to_owned());
        jwk
    }

    /// The RFC 7638 thumbprint, computed here rather than by the library the node uses.
    fn thumbprint(&self) -> String {
        let canonical = match &self.jwk().algorithm {
            AlgorithmParameters::EllipticCurve(p) => {
                format!(
                    r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                    p.x, p.y
                )
            }
            AlgorithmParameters::RSA(p) => {
                format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, p.e, p.n)
            }
            other => panic!("no thumbprint for {other:?}"),
        };
        b64(&sha2::Sha256::digest(canonical.as_bytes()))
    }

    /// A token with `claims` over the defaults (issuer, audience, `sub` u1, five minutes to live).
    fn token(&self, claims: Value) -> String {
        let mut all =
            json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "u1", "iat": now(), "exp": now() + 300});
        all.as_object_mut()
            .unwrap()
            .extend(claims.as_object().unwrap().clone());
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.to_owned());
        jsonwebtoken::encode(&header, &all, &self.encoding).unwrap()
    }

    /// A DPoP proof by this (client) key for `method` `url`, naming `token`'s hash, made `age` seconds ago.
    fn proof(&self, method: &str, url: &str, token: &str, age: i64) -> String {
        let mut header = Header::new(self.alg);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(Jwk::from_encoding_key(&self.encoding, self.alg).unwrap());
        let claims = json!({
            "jti": ulid::Ulid::generate().to_string(),
            "htm": method,
            "htu": url,
            "iat": now() - age,
            "ath": b64(&sha2::Sha256::digest(token.as_bytes())),
        });
        jsonwebtoken::encode(&header, &claims, &self.encoding).unwrap()
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The identity provider's JWKS endpoint: a tiny HTTP server on port 0 whose key set the test can change, and
/// that counts how often it was fetched.
struct Jwks {
    url: String,
    body: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
}

impl Jwks {
    async fn serve(keys: &[&Key]) -> Jwks {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/realms/acme/protocol/openid-connect/certs",
            listener.local_addr().unwrap()
        );
        let jwks = Jwks {
            url,
            body: Arc::default(),
            fetches: Arc::default(),
        };
        jwks.publish(keys);
        let (body, fetches) = (Arc::clone(&jwks.body), Arc::clone(&jwks.fetches));
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (body, fetches) = (Arc::clone(&body), Arc::clone(&fetches));
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    fetches.fetch_add(1, Ordering::SeqCst);
                    let body = body.lock().unwrap().clone();
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                         connection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(answer.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        jwks
    }

    /// From now on the endpoint serves these keys.
    fn publish(&self, keys: &[&Key]) {
        let set = JwkSet {
            keys: keys.iter().map(|k| k.jwk()).collect(),
        };
        *self.body.lock().unwrap() = serde_json::to_string(&set).unwrap();
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Waits until the node fetched the set at least `n` times.
    async fn fetched(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.fetches() < n {
            assert!(Instant::now() < deadline, "the node never fetched the JWKS");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn provider(jwks: &Jwks, dpop: DpopMode) -> IdentityProvider {
    IdentityProvider {
        issuer: ISSUER.into(),
        audience: vec!["other-api".into(), AUDIENCE.into()],
        jwks_url: jwks.url.clone(),
        algorithms: vec![JwtAlgorithm::Rs256, JwtAlgorithm::Es256],
        user_claim: "sub".into(),
        team_claim: Some("groups".into()),
        dpop,
        leeway_seconds: 60,
    }
}

fn subject(id: &str, name: &str, rpm: Option<u64>, team: Option<&str>) -> SubjectEntry {
    SubjectEntry {
        id: id.into(),
        name: name.into(),
        limits: Limits {
            rpm,
            ..Limits::default()
        },
        team_id: team.map(Into::into),
    }
}

/// User u1 ("ada@example.com", team t1), team t1 and team t2 ("research").
fn people() -> AccessEntries {
    AccessEntries {
        keys: vec![],
        users: vec![subject("u1", "ada@example.com", None, Some("t1"))],
        teams: vec![
            subject("t1", "platform", None, None),
            subject("t2", "research", None, None),
        ],
    }
}

/// The `idp` gateway: authentication on, a stored OpenAI key, this provider and these subjects.
fn idp_gateway(
    version: i64,
    provider: IdentityProvider,
    access: AccessEntries,
) -> GatewayConfigDocument {
    let mut doc = gateway("idp", version, |s| {
        s.authentication = true;
        s.identity_providers = Some(vec![provider]);
    });
    doc.provider_configs = vec![stored_key("openai", "default", true, "sk-stored")];
    doc.access = access;
    doc
}

/// A node whose providers all point at `mock`, with `replay` (memory when `None`) and settings `tweak`ed.
fn node(
    mock: &MockProvider,
    replay: Option<Arc<dyn ReplayCache>>,
    tweak: impl FnOnce(&mut gatehouse_data_plane::DataPlaneSettings),
) -> PolicyNode {
    let mut settings = test_settings();
    settings.provider_base_urls = vec![("openai".into(), mock.url("/v1"))];
    settings.upstream_response_timeout = Duration::from_secs(10);
    settings.master_key = Some(MasterKey::from_bytes(&MASTER));
    tweak(&mut settings);
    let (sink, logs) = LogSink::channel(1024);
    let mut dp = DataPlane::bind(settings).unwrap().with_log_sink(sink);
    if let Some(replay) = replay {
        dp = dp.with_replay_cache(replay);
    }
    let store = dp.config_store();
    dp.readiness().set_ready();
    PolicyNode {
        plane: RunningDataPlane::run(dp),
        store,
        logs,
        http: reqwest::Client::new(),
    }
}

/// The URL a client of `node` calls (what a proof's `htu` names).
fn url_of(node: &PolicyNode) -> String {
    node.url(PATH)
}

async fn call(node: &PolicyNode, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = node.http.post(url_of(node)).json(&json!({
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]
    }));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[track_caller]
fn assert_refused(answer: &(u16, Value), message: &str) {
    assert_eq!(answer.0, 401, "{}", answer.1);
    assert_eq!(answer.1["internalCode"], 2009, "{}", answer.1);
    let text = answer.1["message"].as_str().unwrap_or_default();
    assert!(text.contains(message), "{text:?} should say {message:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_and_es256_tokens_of_the_identity_provider_authenticate_and_never_reach_the_provider()
{
    let rsa = Key::rsa("rsa-1", keys::IDP_RSA_A);
    let ec = Key::ec("ec-1", keys::IDP_EC);
    let jwks = Jwks::serve(&[&rsa, &ec]).await;
    let mock = MockProvider::start();
    let mut node = node(&mock, None, |_| {});
    node.apply(&idp_gateway(
        1,
        provider(&jwks, DpopMode::Optional),
        people(),
    ));

    // RS256 as an OpenAI SDK's apiKey; the user's own team applies (the token names no group).
    let token = rsa.token(json!({}));
    let answer = call(&node, &[("authorization", &format!("Bearer {token}"))]).await;
    assert_eq!(answer.0, 200, "{}", answer.1);
    let record = node.next_log().await;
    assert!(record.authenticated);
    assert_eq!(record.key_id, None);
    assert_eq!(record.user_id.as_deref(), Some("u1"));
    assert_eq!(record.team_id.as_deref(), Some("t1"));

    // ES256 in cf-aig-authorization, naming the user by name and a team by a group's name.
    let token = ec.token(json!({"sub": "ada@example.com", "groups": ["unknown", "research"]}));
    let answer = call(
        &node,
        &[("cf-aig-authorization", &format!("Bearer {token}"))],
    )
    .await;
    assert_eq!(answer.0, 200, "{}", answer.1);
    let record = node.next_log().await;
    assert_eq!(record.user_id.as_deref(), Some("u1"));
    assert_eq!(record.team_id.as_deref(), Some("t2"));

    // A caller the document does not know is admitted, without subject limits or ids.
    let token = rsa.token(json!({"sub": "stranger"}));
    let answer = call(&node, &[("authorization", &format!("Bearer {token}"))]).await;
    assert_eq!(answer.0, 200, "{}", answer.1);
    let record = node.next_log().await;
    assert!(record.authenticated);
    assert_eq!((record.user_id, record.team_id), (None, None));

    let seen = mock.requests();
    assert_eq!(seen.len(), 3);
    for request in &seen {
        assert_eq!(request.header("authorization"), Some("Bearer sk-stored"));
        assert!(
            !format!("{:?}", request.headers).contains("eyJ"),
            "no identity token goes upstream"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_fetched_when_a_token_names_its_kid_at_most_once_per_interval() {
    let old = Key::rsa("2024-01", keys::IDP_RSA_A);
    let new = Key::rsa("2024-02", keys::IDP_RSA_B);
    let jwks = Jwks::serve(&[&old]).await;
    let mock = MockProvider::start();
    let node = node(&mock, None, |_| {});
    node.apply(&idp_gateway(
        1,
        provider(&jwks, DpopMode::Optional),
        people(),
    ));
    jwks.fetched(1).await;
    let answer = call(
        &node,
        &[("authorization", &format!("Bearer {}", old.token(json!({}))))],
    )
    .await;
    assert_eq!(answer.0, 200, "{}", answer.1);
    assert_eq!(jwks.fetches(), 1, "known keys cost no fetch");

    // The provider rotates: a token with the new kid makes the node refresh, and waits for it.
    jwks.publish(&[&old, &new]);
    let started = Instant::now();
    let answer = call(
        &node,
        &[("authorization", &format!("Bearer {}", new.token(json!({}))))],
    )
    .await;
    assert_eq!(answer.0, 200, "{}", answer.1);
    assert_eq!(jwks.fetches(), 2);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // A kid the provider never published is refused at once, without another fetch within 30 s.
    let forged = Key::rsa("made-up", keys::IDP_RSA_B);
    let started = Instant::now();
    let answer = call(
        &node,
        &[(
            "authorization",
            &format!("Bearer {}", forged.token(json!({}))),
        )],
    )
    .await;
    assert_refused(
        &answer,
        "no key of the issuer's JWKS matches the token's 'kid'",
    );
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    let answer = call(
        &node,
        &[(
            "authorization",
            &format!("Bearer {}", forged.token(json!({}))),
        )],
    )
    .await;
    assert_refused(&answer, "'kid'");
    assert_eq!(
        jwks.fetches(),
        2,
        "unknown kids cannot make the node hammer the provider"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_audience_expired_bad_signature_and_unknown_issuer_are_401() {
    let key = Key::rsa("k1", keys::IDP_RSA_A);
    let jwks = Jwks::serve(&[&key]).await;
    let mock = MockProvider::start();
    let node = node(&mock, None, |_| {});
    node.apply(&idp_gateway(
        1,
        provider(&jwks, DpopMode::Optional),
        people(),
    ));
    jwks.fetched(1).await;

    let bearer = |t: String| format!("Bearer {t}");
    let cases = [
        (key.token(json!({"aud": "someone-else"})), "wrong audience"),
        (key.token(json!({"exp": now() - 3600})), "expired"),
        (key.token(json!({"nbf": now() + 3600})), "not valid yet"),
        // Signed with another key, under the published key's kid.
        (
            Key::rsa("k1", keys::IDP_RSA_B).token(json!({})),
            "bad signature",
        ),
        // ES384 is not among the provider's algorithms.
        (
            {
                let mut header = Header::new(Algorithm::ES384);
                header.kid = Some("k1".into());
                let claims = json!({"iss": ISSUER, "aud": AUDIENCE, "exp": now() + 60});
                let body = b64(serde_json::to_string(&claims).unwrap().as_bytes());
                let head = b64(serde_json::to_string(&header).unwrap().as_bytes());
                format!("{head}.{body}.c2ln")
            },
            "is not accepted for this issuer",
        ),
    ];
    for (token, message) in cases {
        for header in ["authorization", "cf-aig-authorization"] {
            let answer = call(&node, &[(header, &bearer(token.clone()))]).await;
            assert_refused(&answer, message);
        }
    }
    // A token of an issuer the gateway does not list is no identity token: on this gateway, which requires
    // authentication, it is refused like any credential that is not the gateway's.
    let stranger = key.token(json!({"iss": "https://evil.example.com"}));
    for header in ["authorization", "cf-aig-authorization"] {
        let answer = call(&node, &[(header, &bearer(stranger.clone()))]).await;
        assert_refused(&answer, "Unauthorized");
    }
    assert!(mock.requests().is_empty(), "nothing was forwarded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_and_teams_limits_apply_to_identity_tokens_and_share_the_keys_counters() {
    let key = Key::ec("k1", keys::IDP_EC);
    let jwks = Jwks::serve(&[&key]).await;
    let mock = MockProvider::start();
    let node = node(&mock, None, |_| {});
    let secret = NewSecret::generate();
    let mut access = people();
    access.users = vec![subject("u1", "ada@example.com", Some(3), None)];
    access.teams.push(subject("t3", "tiny", Some(1), None));
    access.keys.push(VirtualKeyEntry {
        id: "k-ada".into(),
        name: "ada's key".into(),
        secret_hash: secret.hash.clone(),
        models: vec![],
        user_id: Some("u1".into()),
        team_id: None,
        expires_at_ms: None,
        limits: Limits::default(),
    });
    node.apply(&idp_gateway(1, provider(&jwks, DpopMode::Optional), access));

    let as_identity = format!("Bearer {}", key.token(json!({})));
    let as_key = format!("Bearer {}", secret.secret);
    for credential in [&as_identity, &as_key, &as_identity] {
        let answer = call(&node, &[("authorization", credential)]).await;
        assert_eq!(answer.0, 200, "{}", answer.1);
    }
    // The user's three requests per minute are spent, whichever way they came.
    let answer = call(&node, &[("authorization", &as_identity)]).await;
    assert_eq!(answer.0, 429, "{}", answer.1);
    assert_eq!(answer.1["internalCode"], 2906);
    assert!(
        answer.1["message"]
            .as_str()
            .unwrap()
            .contains("for user 'ada@example.com'"),
        "{}",
        answer.1
    );

    // A team named by the token's groups has its own limit.
    let in_tiny = key.token(json!({"sub": "stranger", "groups": "tiny"}));
    let answer = call(&node, &[("authorization", &format!("Bearer {in_tiny}"))]).await;
    assert_eq!(answer.0, 200, "{}", answer.1);
    let answer = call(&node, &[("authorization", &format!("Bearer {in_tiny}"))]).await;
    assert_eq!(answer.0, 429, "{}", answer.1);
    assert!(
        answer.1["message"]
            .as_str()
            .unwrap()
            .contains("for team 'tiny'")
    );
}

/// A node with a DPoP-bound token's provider, and the pieces of a DPoP request.
struct DpopSetup {
    idp: Key,
    client: Key,
    other_client: Key,
    jwks: Jwks,
}

impl DpopSetup {
    async fn start(nodes: &[&PolicyNode], dpop: DpopMode) -> DpopSetup {
        let idp = Key::ec("k1", keys::IDP_EC);
        let jwks = Jwks::serve(&[&idp]).await;
        for node in nodes {
            node.apply(&idp_gateway(1, provider(&jwks, dpop), people()));
        }
        jwks.fetched(1).await;
        DpopSetup {
            idp,
            client: Key::ec("client", keys::CLIENT_EC),
            other_client: Key::ec("other", keys::OTHER_CLIENT_EC),
            jwks,
        }
    }

    /// A token bound to the client's key.
    fn bound_token(&self) -> String {
        self.idp
            .token(json!({"cnf": {"jkt": self.client.thumbprint()}}))
    }
}

async fn dpop_call(node: &PolicyNode, token: &str, proof: &str) -> (u16, Value) {
    call(
        node,
        &[("authorization", &format!("DPoP {token}")), ("dpop", proof)],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpop_bound_token_with_a_valid_proof_is_admitted_and_neither_reaches_the_provider() {
    let mock = MockProvider::start();
    let mut node = node(&mock, None, |_| {});
    let s = DpopSetup::start(&[&node], DpopMode::Optional).await;
    let token = s.bound_token();
    let proof = s.client.proof("POST", &url_of(&node), &token, 0);
    let answer = dpop_call(&node, &token, &proof).await;
    assert_eq!(answer.0, 200, "{}", answer.1);
    assert_eq!(node.next_log().await.user_id.as_deref(), Some("u1"));
    let seen = mock.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("authorization"), Some("Bearer sk-stored"));
    assert_eq!(seen[0].header("dpop"), None, "the proof is the gateway's");
    // The htu compares scheme and host case-insensitively and without the query.
    let upper = url_of(&node).replace("http://", "HTTP://") + "?trace=1";
    let proof = s.client.proof("POST", &upper, &token, 0);
    assert_eq!(dpop_call(&node, &token, &proof).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proofs_for_another_url_stale_ones_and_ones_by_a_key_the_token_is_not_bound_to_are_401() {
    let mock = MockProvider::start();
    let node = node(&mock, None, |_| {});
    let s = DpopSetup::start(&[&node], DpopMode::Optional).await;
    let token = s.bound_token();
    let url = url_of(&node);
    let other_path = url.replace("/chat/completions", "/embeddings");
    let other_host = url.replace("127.0.0.1", "gateway.example.com");
    let cases = [
        (s.client.proof("POST", &other_path, &token, 0), "'htu'"),
        (s.client.proof("POST", &other_host, &token, 0), "'htu'"),
        (s.client.proof("GET", &url, &token, 0), "'htm'"),
        (s.client.proof("POST", &url, &token, 120), "'iat'"),
        (s.client.proof("POST", &url, &token, -120), "'iat'"),
        (
            s.client
                .proof("POST", &url, &s.idp.token(json!({"cnf": {"jkt": "x"}})), 0),
            "'ath'",
        ),
        // Signed by another key than the one the token is bound to.
        (
            s.other_client.proof("POST", &url, &token, 0),
            "bound to (cnf.jkt)",
        ),
        ("not-a-jwt".to_owned(), "not a JWT"),
    ];
    for (proof, message) in cases {
        let answer = dpop_call(&node, &token, &proof).await;
        assert_refused(&answer, message);
    }
    // A proof whose typ is wrong, or whose jwk carries a private part.
    let claims = json!({"jti": "j", "htm": "POST", "htu": url, "iat": now()});
    let public = serde_json::to_value(s.client.jwk()).unwrap();
    let mut private = public.clone();
    private["d"] = "c2VjcmV0".into();
    // The claims carry no `ath`: RFC 9449 requires it with an access token.
    for (typ, jwk, message) in [
        ("JWT", &public, "'typ'"),
        ("dpop+jwt", &private, "public key"),
        ("dpop+jwt", &public, "'ath' is missing"),
    ] {
        let header = json!({"typ": typ, "alg": "ES256", "jwk": jwk});
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature =
            jsonwebtoken::crypto::sign(input.as_bytes(), &s.client.encoding, Algorithm::ES256)
                .unwrap();
        let proof = format!("{input}.{signature}");
        assert_refused(&dpop_call(&node, &token, &proof).await, message);
    }
    // Without any proof.
    let answer = call(&node, &[("authorization", &format!("DPoP {token}"))]).await;
    assert_refused(&answer, "exactly one DPoP header");
    assert!(mock.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_proof_is_refused_by_its_node_and_by_another_node_sharing_redis() {
    let Some(redis) = test_redis_url() else {
        return;
    };
    let prefix = unique_prefix("dpop-replay");
    let replay = || -> Arc<dyn ReplayCache> {
        Arc::new(
            RedisReplayCache::new(
                &gatehouse_bus::RedisBusSettings {
                    url: redis.clone(),
                    prefix: prefix.clone(),
                },
                tokio::runtime::Handle::current(),
            )
            .unwrap(),
        )
    };
    let mock = MockProvider::start();
    let a = node(&mock, Some(replay()), |_| {});
    let b = node(&mock, Some(replay()), |_| {});
    let s = DpopSetup::start(&[&a, &b], DpopMode::Optional).await;
    let token = s.bound_token();
    // Both nodes listen on 127.0.0.1; a proof names one URL, so the other node gets a request for that URL.
    let proof = s.client.proof("POST", &url_of(&a), &token, 0);
    assert_eq!(dpop_call(&a, &token, &proof).await.0, 200);
    assert_refused(&dpop_call(&a, &token, &proof).await, "jti");
    let at_b = b
        .http
        .post(url_of(&b))
        .header("host", a.plane.addr.to_string())
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", &proof)
        .json(&json!({"model": "gpt-4o-mini", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(at_b.status(), 401);
    let body: Value = at_b.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("jti"), "{body}");
    // A fresh proof works on the other node.
    let fresh = s.client.proof("POST", &url_of(&b), &token, 0);
    assert_eq!(dpop_call(&b, &token, &fresh).await.0, 200);
    assert_eq!(mock.requests().len(), 2);
    delete_prefix(&redis, &prefix);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_use_of_a_bound_token_is_refused_and_the_dpop_mode_decides_what_else_is() {
    let mock = MockProvider::start();
    let node = node(&mock, None, |_| {});
    let s = DpopSetup::start(&[&node], DpopMode::Optional).await;
    let bound = s.bound_token();
    let plain = s.idp.token(json!({}));
    let answer = call(&node, &[("authorization", &format!("Bearer {bound}"))]).await;
    assert_refused(&answer, "must be sent as 'Authorization: DPoP'");
    // A token that is not bound cannot be used as DPoP.
    let proof = s.client.proof("POST", &url_of(&node), &plain, 0);
    assert_refused(&dpop_call(&node, &plain, &proof).await, "must be bound");

    // `required`: plain bearer tokens are refused; `off`: the DPoP scheme is.
    let with_mode = |version, dpop| idp_gateway(version, provider(&s.jwks, dpop), people());
    node.apply(&with_mode(2, DpopMode::Required));
    let answer = call(&node, &[("authorization", &format!("Bearer {plain}"))]).await;
    assert_refused(&answer, "must be DPoP-bound");
    let proof = s.client.proof("POST", &url_of(&node), &bound, 0);
    assert_eq!(dpop_call(&node, &bound, &proof).await.0, 200);
    node.apply(&with_mode(3, DpopMode::Off));
    let proof = s.client.proof("POST", &url_of(&node), &bound, 0);
    assert_refused(
        &dpop_call(&node, &bound, &proof).await,
        "does not accept DPoP",
    );
    let answer = call(&node, &[("authorization", &format!("Bearer {plain}"))]).await;
    assert_eq!(answer.0, 200, "{}", answer.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_proto_names_the_proofs_scheme_only_on_a_node_that_trusts_it() {
    let mock = MockProvider::start();
    let trusting = node(&mock, None, |s| s.trust_forwarded_proto = true);
    let plain = node(&mock, None, |_| {});
    let s = DpopSetup::start(&[&trusting, &plain], DpopMode::Optional).await;
    let token = s.bound_token();
    for (node, status) in [(&trusting, 200), (&plain, 401)] {
        let https = url_of(node).replace("http://", "https://");
        let proof = s.client.proof("POST", &https, &token, 0);
        let answer = call(
            node,
            &[
                ("authorization", &format!("DPoP {token}")),
                ("dpop", &proof),
                ("x-forwarded-proto", "https"),
            ],
        )
        .await;
        assert_eq!(answer.0, status, "{}", answer.1);
    }
}
