//! Planning: the steps a request may take, one for the provider-native form, one per entry of a universal request
//! (`plan/universal.rs`). A step is everything one provider call needs (target, rewritten header with the
//! credential (`plan/credentials.rs`), body) plus the policies that govern it (retries, timeout, cache), resolved
//! once before the first attempt.
//!
//! Precedence of controls (spec §2.3): a universal step's `config` and `headers` > the request's `cf-aig-*`
//! headers > the gateway's settings.

pub(crate) mod compat;
mod credentials;
mod universal;

use std::time::Duration;

use bytes::Bytes;
use gatehouse_shared::gateway::{GatewaySettings, RetryBackoff};
use gatehouse_shared::providers::COMPAT_PROVIDER;
use pingora::http::RequestHeader;

use super::body::RequestBody;
use super::cache::CachePlan;
use crate::error::AiGatewayError;
use crate::proxy::controls::{self, Controls};
use crate::proxy::record::StepFacts;
use crate::proxy::retry::{Backoff, MAX_ATTEMPTS, MAX_RETRY_DELAY_MS, RetryPolicy};
use crate::proxy::upstream::{is_gateway_control, upstream_request};
use crate::route::{RouteError, UpstreamTable, UpstreamTarget};
use crate::snapshot::CompiledGateway;

/// One provider call of a request, ready to attempt.
#[derive(Debug)]
pub(crate) struct Step {
    /// The universal step's position in the request (0 for the provider-native form): `cf-aig-step` and logs.
    pub index: u32,
    /// The provider slug and the path after it, as the client wrote them (logs, usage format).
    pub provider: String,
    pub path: String,
    pub target: UpstreamTarget,
    /// The upstream request header: the client's minus hop-by-hop and control headers, the credential set.
    pub header: RequestHeader,
    pub body: Bytes,
    pub model: Option<String>,
    pub retry: RetryPolicy,
    /// Time to the response header for the attempts the loop may cut.
    pub timeout: Option<Duration>,
    /// Whether and how this step's answer is looked up in and stored to the cache.
    pub cache: Option<CachePlan>,
    /// On `/compat`, how the answer is translated back to the client's format; `None` relays it as it comes.
    pub translation: Option<Box<compat::Translation>>,
    /// Whether the step serves `/compat` (its answer then names the provider and model that served it).
    pub compat: bool,
    /// A credential minted from a stored cloud secret just before the attempts (`proxy/cloud_auth.rs`).
    pub cloud_auth: Option<CloudAuth>,
    /// A routed target's health and the statuses that retry it or move on (`dynamic/…` routes); `None` keeps the
    /// attempt loop's defaults.
    pub target_policy: Option<std::sync::Arc<crate::health::TargetPolicy>>,
}

/// A stored secret the gateway turns into a credential instead of sending it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CloudAuth {
    /// A Vertex AI service-account JSON: exchanged for an OAuth access token.
    Vertex { secret: String },
    /// A stored AWS key pair: the final request is signed with SigV4.
    Bedrock {
        credentials: crate::dialect::bedrock::sigv4::AwsCredentials,
        region: String,
    },
}

impl Step {
    /// What the step's log record says of it.
    pub(crate) fn facts(&self) -> StepFacts<'_> {
        StepFacts {
            index: self.index,
            provider: &self.provider,
            path: &self.path,
            model: self.model.as_deref(),
            body: &self.body,
        }
    }
}

/// A universal step's `config` (spec §2.1 form 3), already range-checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StepConfig {
    pub request_timeout: Option<Duration>,
    pub max_attempts: Option<u32>,
    pub retry_delay: Option<Duration>,
    pub backoff: Option<Backoff>,
}

/// The retry policy: step config > headers > gateway settings > no retry.
fn retry_policy(
    controls: &Controls<'_>,
    gateway: &GatewaySettings,
    config: &StepConfig,
) -> Result<RetryPolicy, AiGatewayError> {
    let header_attempts = controls.number(controls::MAX_ATTEMPTS, 1..=u64::from(MAX_ATTEMPTS))?;
    let header_delay = controls.number(controls::RETRY_DELAY, 0..=MAX_RETRY_DELAY_MS)?;
    let header_backoff = match controls.text(controls::BACKOFF) {
        None => None,
        Some(raw) => Some(Backoff::parse(raw).ok_or_else(|| {
            AiGatewayError::bad_request(format!(
                "{} must be constant, linear or exponential, got {raw:?}",
                controls::BACKOFF
            ))
        })?),
    };
    // Stored settings were range-checked by the control plane; clamping keeps a node safe from a document
    // written by something else.
    let gateway_attempts = gateway
        .retry_max_attempts
        .map(|n| n.clamp(1, i64::from(MAX_ATTEMPTS)) as u32);
    let gateway_delay = gateway
        .retry_delay
        .map(|ms| Duration::from_millis(ms.clamp(0, MAX_RETRY_DELAY_MS as i64) as u64));
    let gateway_backoff = gateway.retry_backoff.map(|b| match b {
        RetryBackoff::Constant => Backoff::Constant,
        RetryBackoff::Linear => Backoff::Linear,
        RetryBackoff::Exponential => Backoff::Exponential,
    });
    Ok(RetryPolicy {
        max_attempts: config
            .max_attempts
            .or(header_attempts.map(|n| n as u32))
            .or(gateway_attempts)
            .unwrap_or(1),
        delay: config
            .retry_delay
            .or(header_delay.map(Duration::from_millis))
            .or(gateway_delay)
            .unwrap_or(Duration::ZERO),
        backoff: config
            .backoff
            .or(header_backoff)
            .or(gateway_backoff)
            .unwrap_or(Backoff::Constant),
    })
}

/// `cf-aig-request-timeout` (or the step's `requestTimeout`): milliseconds to the provider's first byte.
fn timeout(
    controls: &Controls<'_>,
    config: &StepConfig,
) -> Result<Option<Duration>, AiGatewayError> {
    if config.request_timeout.is_some() {
        return Ok(config.request_timeout);
    }
    Ok(controls
        .number(controls::REQUEST_TIMEOUT, 1..=u64::from(u32::MAX))?
        .map(Duration::from_millis))
}

/// What a step is built from.
pub(crate) struct StepRequest<'a> {
    pub provider: &'a str,
    /// The path after the provider slug, without a leading slash, and the query string.
    pub rest: &'a str,
    pub query: Option<&'a str>,
    pub account: &'a str,
    /// The header the upstream header starts from (the client's request header).
    pub client: &'a RequestHeader,
    /// Universal steps: the step's `headers`, which override the client's.
    pub step_headers: &'a [(String, String)],
    /// Universal steps always POST.
    pub method: Option<http::Method>,
    pub body: Bytes,
    /// What the body says of itself, read once by the caller.
    pub peek: super::body::RequestPeek,
    pub config: &'a StepConfig,
}

/// Which form of inference request this is, and where its path points.
#[derive(Debug, Clone, Copy)]
pub(crate) enum InferenceRoute<'a> {
    /// `/v1/{account}/{gateway}/{provider}/{rest}`.
    Provider {
        path: crate::proxy::endpoint::ProviderPath<'a>,
        query: Option<&'a str>,
    },
    /// `POST /v1/{account}/{gateway}`.
    Universal { account: &'a str, gateway: &'a str },
}

impl<'a> InferenceRoute<'a> {
    pub(crate) fn account(&self) -> &'a str {
        match self {
            InferenceRoute::Provider { path, .. } => path.account,
            InferenceRoute::Universal { account, .. } => account,
        }
    }

    pub(crate) fn gateway(&self) -> &'a str {
        match self {
            InferenceRoute::Provider { path, .. } => path.gateway,
            InferenceRoute::Universal { gateway, .. } => gateway,
        }
    }

    /// `/v1/{account}/{gateway}/compat/…`, the OpenAI-compatible endpoint.
    pub(crate) fn is_compat(&self) -> bool {
        matches!(self, InferenceRoute::Provider { path, .. } if path.provider == COMPAT_PROVIDER)
    }

    pub(crate) fn is_universal(&self) -> bool {
        matches!(self, InferenceRoute::Universal { .. })
    }

    /// The provider slug and path its record starts with (a universal record is re-pointed at its step).
    pub(crate) fn record_target(&self) -> (&'a str, &'a str) {
        match self {
            InferenceRoute::Provider { path, .. } => (path.provider, path.rest),
            InferenceRoute::Universal { .. } => ("universal", ""),
        }
    }
}

/// The request's steps: the provider-native request itself, or each step of a universal body.
pub(crate) fn run<'a>(
    table: &'a UpstreamTable,
    gateway: &'a CompiledGateway,
    client: &'a RequestHeader,
    route: InferenceRoute<'a>,
    body: RequestBody,
    bearer_is_gateway_token: bool,
    routed: Option<&super::route::RoutePlan>,
) -> Result<(Vec<Step>, Option<compat::routed::Deferred<'a>>), AiGatewayError> {
    match route {
        InferenceRoute::Provider { path, .. } if path.provider == COMPAT_PROVIDER => {
            let operation = compat::Operation::of(path.rest).ok_or(AiGatewayError::NOT_FOUND)?;
            let cx = compat::BuildContext {
                table,
                gateway,
                client,
                account: path.account,
                operation,
                bearer_is_gateway_token,
            };
            // Spend limits check every step before the first attempt: nothing may be built later then.
            compat::build(cx, body, routed, gateway.spend_limits.is_none())
        }
        InferenceRoute::Provider { path, query } => {
            let config = StepConfig::default();
            let step = build(
                table,
                gateway,
                StepRequest {
                    provider: path.provider,
                    rest: path.rest,
                    query,
                    account: path.account,
                    client,
                    step_headers: &[],
                    method: None,
                    body: body.bytes,
                    peek: body.peek,
                    config: &config,
                },
            )?;
            Ok((vec![step], None))
        }
        InferenceRoute::Universal { account, .. } => universal::parse(&body.bytes)?
            .into_iter()
            .enumerate()
            .map(|(i, u)| {
                build(
                    table,
                    gateway,
                    StepRequest {
                        provider: &u.provider,
                        rest: &u.endpoint,
                        query: u.query_string.as_deref(),
                        account,
                        client,
                        step_headers: &u.headers,
                        method: Some(http::Method::POST),
                        peek: super::body::RequestPeek::of(&u.body),
                        body: u.body.clone(),
                        config: &u.config,
                    },
                )
                .map(|step| Step {
                    index: i as u32,
                    ..step
                })
                .map_err(|e| AiGatewayError {
                    message: format!("step {i}: {}", e.message).into(),
                    ..e
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|steps| (steps, None)),
    }
}

/// Builds a step: route, controls, upstream header and credential.
fn build(
    table: &UpstreamTable,
    gateway: &CompiledGateway,
    request: StepRequest<'_>,
) -> Result<Step, AiGatewayError> {
    let target = table
        .route(
            request.provider,
            request.rest,
            request.query,
            request.account,
            |slug| {
                gateway
                    .custom_providers
                    .get(slug)
                    .map(|c| c.base_url.clone())
            },
        )
        .map_err(|e| match e {
            RouteError::UnknownProvider => AiGatewayError::INVALID_PROVIDER,
            RouteError::BadPath(message) => AiGatewayError::bad_request(message),
        })?;
    let controls = Controls {
        request: request.client,
        step_headers: request.step_headers,
    };
    let retry = retry_policy(&controls, &gateway.settings, request.config)?;
    let timeout = timeout(&controls, request.config)?;
    let mut header = upstream_request(request.client, &target, request.body.len())
        .map_err(|e| AiGatewayError::bad_request(format!("request header: {e}")))?;
    if let Some(method) = request.method {
        header.set_method(method);
    }
    for (name, value) in request.step_headers {
        let lower = name.to_ascii_lowercase();
        if is_gateway_control(&lower)
            || matches!(
                lower.as_str(),
                "host" | "content-length" | "transfer-encoding"
            )
        {
            continue;
        }
        header.insert_header(lower, value.as_str()).map_err(|_| {
            AiGatewayError::bad_request(format!("step header {name:?} is not valid"))
        })?;
    }
    let alias = controls.text(controls::BYOK_ALIAS);
    // The merged header is what the provider would receive, so a key inside the step's headers counts as the
    // client's own key.
    let credential = credentials::choose(
        request.provider,
        target.credential,
        &header,
        gateway.provider_keys.get(request.provider),
        alias,
    )?;
    let mut cloud_auth = None;
    if let Some(c) = credential {
        let service_account = (request.provider == "google-vertex-ai")
            .then(|| c.value.strip_prefix("Bearer "))
            .flatten()
            .filter(|secret| crate::dialect::vertex_auth::ServiceAccount::parse(secret).is_ok());
        if let Some(secret) = service_account {
            // Vertex's stored key is a service-account JSON, exchanged for a token before the attempts.
            cloud_auth = Some(CloudAuth::Vertex {
                secret: secret.to_owned(),
            });
        } else {
            header.insert_header(c.name, c.value).map_err(|_| {
                AiGatewayError::bad_request("the stored provider key is not a valid header value")
            })?;
        }
    }
    let cache = super::cache::plan(
        gateway,
        &controls,
        &target,
        &header,
        &request.body,
        request.peek.stream,
    )?;
    Ok(Step {
        index: 0,
        provider: request.provider.to_owned(),
        path: request.rest.to_owned(),
        target,
        header,
        body: request.body,
        model: request.peek.model,
        retry,
        timeout,
        cache,
        translation: None,
        compat: false,
        cloud_auth,
        target_policy: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> RequestHeader {
        let mut h = RequestHeader::build("POST", b"/v1/a/g/openai/chat/completions", None).unwrap();
        for (k, v) in headers {
            h.append_header(k.to_string(), *v).unwrap();
        }
        h
    }

    fn settings() -> GatewaySettings {
        let mut s = GatewaySettings::for_default_gateway();
        s.retry_max_attempts = Some(3);
        s.retry_delay = Some(200);
        s.retry_backoff = Some(RetryBackoff::Linear);
        s
    }

    #[test]
    fn step_config_beats_headers_which_beat_the_gateway() {
        let req = request(&[
            ("cf-aig-max-attempts", "2"),
            ("cf-aig-backoff", "exponential"),
        ]);
        let none: &[(String, String)] = &[];
        let controls = Controls {
            request: &req,
            step_headers: none,
        };
        let p = retry_policy(&controls, &settings(), &StepConfig::default()).unwrap();
        assert_eq!(
            (p.max_attempts, p.delay, p.backoff),
            (2, Duration::from_millis(200), Backoff::Exponential)
        );
        let config = StepConfig {
            max_attempts: Some(4),
            retry_delay: Some(Duration::from_millis(10)),
            ..Default::default()
        };
        let p = retry_policy(&controls, &settings(), &config).unwrap();
        assert_eq!(
            (p.max_attempts, p.delay, p.backoff),
            (4, Duration::from_millis(10), Backoff::Exponential)
        );
        let step_headers = vec![("CF-AIG-Max-Attempts".to_owned(), "5".to_owned())];
        let controls = Controls {
            request: &req,
            step_headers: &step_headers,
        };
        let p = retry_policy(&controls, &settings(), &StepConfig::default()).unwrap();
        assert_eq!(p.max_attempts, 5);
    }

    #[test]
    fn without_any_setting_there_is_one_attempt_and_no_timeout() {
        let req = request(&[]);
        let controls = Controls {
            request: &req,
            step_headers: &[],
        };
        let p = retry_policy(
            &controls,
            &GatewaySettings::for_default_gateway(),
            &StepConfig::default(),
        )
        .unwrap();
        assert_eq!(p, RetryPolicy::default());
        assert_eq!(timeout(&controls, &StepConfig::default()).unwrap(), None);
    }

    #[test]
    fn out_of_range_or_malformed_controls_are_refused_with_the_header_named() {
        for (name, value) in [
            ("cf-aig-max-attempts", "0"),
            ("cf-aig-max-attempts", "6"),
            ("cf-aig-max-attempts", "two"),
            ("cf-aig-retry-delay", "5001"),
            ("cf-aig-retry-delay", "-1"),
            ("cf-aig-backoff", "random"),
            ("cf-aig-request-timeout", "0"),
            ("cf-aig-request-timeout", "1.5"),
        ] {
            let req = request(&[(name, value)]);
            let controls = Controls {
                request: &req,
                step_headers: &[],
            };
            let err = retry_policy(&controls, &settings(), &StepConfig::default())
                .err()
                .or_else(|| timeout(&controls, &StepConfig::default()).err())
                .unwrap_or_else(|| panic!("{name}: {value} was accepted"));
            assert_eq!(err.status, http::StatusCode::BAD_REQUEST);
            assert!(err.message.contains(name), "{}", err.message);
        }
    }
}
