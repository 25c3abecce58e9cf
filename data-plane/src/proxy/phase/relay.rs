//! Relaying the answer downstream through the response tap chain, and storing it in the cache afterwards; or
//! sending a cached answer through the same chain.
//!
//! The chain's order is fixed here: (rewriting taps, when they come: translation, then streaming guardrails) →
//! the log record's capture and usage scan → the cache tee. Observers come last so that they see what the client
//! got.

use bytes::Bytes;
use gatehouse_bus::response_cache::ResponseCache;
use pingora::proxy::Session;

use super::cache::{self, CacheTee, CachedResponse};
use super::plan::Step;
use crate::dialect;
use crate::error::AiGatewayError;
use crate::proxy::ctx::{RequestContext, ResponseIds};
use crate::proxy::taps::ResponseTap;
use crate::proxy::upstream::{ForwardError, OpenedResponse, Relay, Upstreams};
use crate::proxy::{controls, translate};

/// Sends the answering step's response downstream as it arrives, then stores it when it is cacheable.
pub(crate) async fn stream(
    upstreams: &Upstreams,
    cache_store: &dyn ResponseCache,
    session: &mut Session,
    ctx: &mut RequestContext,
    step: &Step,
    opened: OpenedResponse,
    ids: &ResponseIds,
) -> Result<(), ForwardError> {
    let plan = step.cache.as_ref();
    let mut tee = plan.filter(|p| !p.skip).map(|_| CacheTee::default());
    let mut extra = ids.headers(plan.map(|_| "MISS"));
    if step.compat {
        // What actually served a `/compat` request (Cloudflare sends these for dynamic routes).
        extra.push((controls::MODEL, step.model.as_deref().unwrap_or("")));
        extra.push((controls::PROVIDER, step.provider.as_str()));
    }
    let mut capture = ctx.log.as_deref_mut().map(|d| &mut d.response);
    if let Some(c) = capture.as_deref_mut() {
        c.expect(match step.translation {
            // Taps see what the client got: OpenAI's format.
            Some(_) => dialect::Dialect::OpenAiChat,
            None => dialect::of(&step.provider, &step.path),
        });
    }
    // An absent stage is a tap that does nothing: one fixed chain, no allocation per request.
    let (mut no_capture, mut no_tee) = (NoTap, NoTap);
    let capture: &mut dyn ResponseTap = match capture {
        Some(c) => c,
        None => &mut no_capture,
    };
    let tee_tap: &mut dyn ResponseTap = match tee.as_mut() {
        Some(t) => t,
        None => &mut no_tee,
    };
    if let Some(translation) = step.translation.as_deref() {
        let translated = translate::relay(
            upstreams,
            session,
            opened,
            translation,
            &extra,
            &ids.request_id,
            &mut [capture, tee_tap],
        )
        .await?;
        if let Some(draft) = ctx.log.as_deref_mut() {
            draft.response.known_usage = translated.usage.map(|u| crate::usage::Usage {
                tokens_in: Some(u.prompt_tokens),
                tokens_out: Some(u.completion_tokens),
                cached_tokens_in: Some(u.cached_tokens),
                model: None,
            });
        }
    } else {
        upstreams
            .relay(
                session,
                opened,
                Relay {
                    extra_response_headers: &extra,
                    read_timeout: upstreams.response_timeout(),
                },
                &mut [capture, tee_tap],
            )
            .await?;
    }
    if let (Some(plan), Some(entry)) = (plan, tee.and_then(CacheTee::into_entry)) {
        cache::store(cache_store, &plan.key, entry, plan.ttl).await;
    }
    Ok(())
}

/// Sends a cached answer; the log record reads usage from it as from a provider response.
pub(crate) async fn cached(
    session: &mut Session,
    ctx: &mut RequestContext,
    step: &Step,
    hit: CachedResponse,
    ids: &ResponseIds,
) -> Result<(), ForwardError> {
    let header = hit
        .response_header(&ids.headers(Some("HIT")))
        .map_err(|e| {
            ForwardError::BeforeResponse(AiGatewayError::bad_request(format!("cached header: {e}")))
        })?;
    if let Some(capture) = ctx.log.as_deref_mut().map(|d| &mut d.response) {
        capture.expect(dialect::of(&step.provider, &step.path));
        capture.header(&header);
        capture.chunk(&hit.body);
        capture.end(true);
    }
    session
        .write_response_header(Box::new(header), false)
        .await
        .map_err(ForwardError::AfterResponse)?;
    session
        .write_response_body(Some(Bytes::clone(&hit.body)), true)
        .await
        .map_err(ForwardError::AfterResponse)?;
    Ok(())
}

/// A stage that is off for this response.
struct NoTap;

impl ResponseTap for NoTap {
    fn header(&mut self, _head: &pingora::http::ResponseHeader) {}
    fn chunk(&mut self, _chunk: &[u8]) {}
    fn end(&mut self, _complete: bool) {}
}
