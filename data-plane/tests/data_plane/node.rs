//! A data-plane node for inference tests: providers pointed at a mock, configuration applied directly to the
//! node's config store (propagation has its own tests), traffic over real sockets.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use gatehouse_data_plane::DataPlane;
use gatehouse_data_plane::snapshot::ConfigStore;
use gatehouse_mock_providers::MockProvider;
use gatehouse_shared::config::{GatewayConfigDocument, GatewayKey, ProviderConfigEntry};
use gatehouse_shared::crypto::MasterKey;
use gatehouse_shared::gateway::GatewaySettings;
use gatehouse_shared::token::{Scope, TOKEN_ISSUER, TokenClaims, VerificationKey};

use crate::harness::{RunningDataPlane, test_settings};

pub const MASTER: [u8; 32] = [9; 32];

pub struct Node {
    pub plane: RunningDataPlane,
    pub store: Arc<ConfigStore>,
    pub http: reqwest::Client,
}

impl Node {
    /// A ready node whose providers point at `mock` (OpenAI under `/v1`, Anthropic at the root).
    pub fn start(
        mock: &MockProvider,
        tweak: impl FnOnce(&mut gatehouse_data_plane::DataPlaneSettings),
    ) -> Node {
        let mut settings = test_settings();
        settings.master_key = Some(MasterKey::from_bytes(&MASTER));
        settings.provider_base_urls = vec![
            ("openai".into(), mock.url("/v1")),
            ("anthropic".into(), mock.base_url()),
            ("google-ai-studio".into(), mock.base_url()),
            ("google-vertex-ai".into(), mock.base_url()),
            ("cohere".into(), mock.base_url()),
            ("aws-bedrock".into(), mock.base_url()),
        ];
        settings.upstream_response_timeout = Duration::from_secs(5);
        tweak(&mut settings);
        let dp = DataPlane::bind(settings).unwrap();
        let store = dp.config_store();
        dp.readiness().set_ready();
        Node {
            plane: RunningDataPlane::run(dp),
            store,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.plane.addr, path)
    }

    pub fn add_gateway(&self, doc: GatewayConfigDocument) {
        self.store.apply_gateway(&doc, "test").unwrap();
    }
}

pub fn gateway(account: &str, id: &str, version: i64) -> GatewayConfigDocument {
    let mut settings = GatewaySettings::for_default_gateway();
    settings.authentication = false;
    GatewayConfigDocument {
        schema: 1,
        key: GatewayKey::new(account, id),
        version,
        internal_id: format!("{account}-{id}"),
        is_default: false,
        settings,
        provider_configs: vec![],
        custom_providers: vec![],
        cache_generation: 0,
        access: Default::default(),
        routes: Vec::new(),
    }
}

pub fn stored_key(provider: &str, alias: &str, default: bool, secret: &str) -> ProviderConfigEntry {
    ProviderConfigEntry {
        id: format!("{provider}-{alias}"),
        provider_slug: provider.into(),
        alias: alias.into(),
        default_config: default,
        sealed_secret: MasterKey::from_bytes(&MASTER).seal(secret.as_bytes()),
        rate_limit: None,
        rate_limit_period: None,
    }
}

/// Signs tokens the way the control plane does.
pub struct Signer {
    key: jsonwebtoken::EncodingKey,
    pub public: VerificationKey,
}

impl Signer {
    pub fn new(kid: &str) -> Self {
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let der = key.to_pkcs8_der().unwrap();
        Self {
            key: jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes()),
            public: VerificationKey {
                kid: kid.into(),
                public_key: base64::engine::general_purpose::STANDARD
                    .encode(key.verifying_key().as_bytes()),
            },
        }
    }

    pub fn token(&self, jti: &str, accounts: &[&str], scopes: &[Scope]) -> String {
        let claims = TokenClaims {
            jti: jti.into(),
            iss: TOKEN_ISSUER.into(),
            accounts: accounts.iter().map(|a| (*a).to_owned()).collect(),
            scopes: scopes.to_vec(),
            iat: 0,
            exp: None,
        };
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(self.public.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.key).unwrap()
    }
}
