//! A stand-in OpenTelemetry collector: `POST /v1/traces` (OTLP/HTTP) on a port of its own. It records every request
//! (headers, content type, body) and decodes OTLP/JSON bodies into one [`OtlpSpan`] per span, so a test can check
//! what the gateway exported. Protobuf bodies are recorded raw. [`CollectorBehaviour`] makes it sick: slow, or
//! answering with an error status.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::MAX_BODY_BYTES;

/// How the collector answers.
#[derive(Debug, Clone)]
pub struct CollectorBehaviour {
    /// The status of every answer (`503` for a sick collector); 2xx answers carry an empty
    /// `ExportTraceServiceResponse`.
    pub status: u16,
    /// How long the collector waits before answering (the request is recorded at once).
    pub delay: Duration,
}

impl Default for CollectorBehaviour {
    fn default() -> Self {
        Self {
            status: 200,
            delay: Duration::ZERO,
        }
    }
}

/// One export request as the collector received it.
#[derive(Debug, Clone)]
pub struct OtlpRequest {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub content_type: Option<String>,
    /// The whole body, byte for byte.
    pub body: Bytes,
    /// The spans of an OTLP/JSON body, in order; empty for protobuf or a body that is not OTLP/JSON.
    pub spans: Vec<OtlpSpan>,
    pub received_at: Instant,
}

impl OtlpRequest {
    /// A header's value when it is present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body parsed as JSON, when it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// One span of an OTLP/JSON export, with its resource's and scope's names.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpSpan {
    /// As sent: OTLP/JSON's lowercase hex.
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub name: String,
    pub kind: Option<i64>,
    pub start_time_unix_nano: Option<String>,
    pub end_time_unix_nano: Option<String>,
    /// `status.code` (2 is ERROR); `None` when the status is unset.
    pub status_code: Option<i64>,
    pub status_message: Option<String>,
    /// Each attribute's value unwrapped from its `AnyValue`: `stringValue` → string, `intValue` (a decimal string
    /// on the wire) → number, `doubleValue` → number, `boolValue` → bool; another form is kept as sent.
    pub attributes: BTreeMap<String, Value>,
    /// The resource's attributes, unwrapped the same way (`service.name`, …).
    pub resource: BTreeMap<String, Value>,
    pub scope_name: Option<String>,
    /// The span object as sent.
    pub raw: Value,
}

#[derive(Debug, Default)]
struct CollectorState {
    behaviour: Mutex<CollectorBehaviour>,
    requests: Mutex<Vec<OtlpRequest>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A collector on 127.0.0.1 and an ephemeral port, served by a runtime on its own thread (like
/// [`crate::MockProvider`]). Dropping it stops the server.
pub struct MockCollector {
    addr: SocketAddr,
    state: Arc<CollectorState>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl MockCollector {
    /// A healthy collector.
    pub fn start() -> MockCollector {
        MockCollector::start_with(CollectorBehaviour::default())
    }

    pub fn start_with(behaviour: CollectorBehaviour) -> MockCollector {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .expect("bind the mock collector on 127.0.0.1");
        let addr = listener.local_addr().expect("mock collector address");
        listener
            .set_nonblocking(true)
            .expect("non-blocking mock collector listener");
        let state = Arc::new(CollectorState {
            behaviour: Mutex::new(behaviour),
            requests: Mutex::new(Vec::new()),
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let served = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name(format!("mock-collector-{}", addr.port()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("mock collector runtime");
                runtime.block_on(async move {
                    let listener =
                        TcpListener::from_std(listener).expect("mock collector listener");
                    serve(listener, served, async {
                        let _ = stopped.await;
                    })
                    .await;
                });
            })
            .expect("spawn the mock collector thread");
        MockCollector {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/v1/traces`, the URL an `otel` entry names.
    pub fn traces_url(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<OtlpRequest> {
        lock(&self.state.requests).clone()
    }

    /// Every decoded span so far, in the order received.
    pub fn spans(&self) -> Vec<OtlpSpan> {
        lock(&self.state.requests)
            .iter()
            .flat_map(|r| r.spans.iter().cloned())
            .collect()
    }

    /// Waits until at least `count` spans have arrived (or `timeout` passed) and returns them all. Async so the
    /// exporter under test keeps running on the caller's runtime.
    pub async fn wait_for_spans(&self, count: usize, timeout: Duration) -> Vec<OtlpSpan> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if spans.len() >= count || Instant::now() >= deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until at least `count` requests have arrived (or `timeout` passed) and returns them all.
    pub async fn wait_for_requests(&self, count: usize, timeout: Duration) -> Vec<OtlpRequest> {
        let deadline = Instant::now() + timeout;
        loop {
            let requests = self.requests();
            if requests.len() >= count || Instant::now() >= deadline {
                return requests;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// How later requests are answered.
    pub fn set_behaviour(&self, behaviour: CollectorBehaviour) {
        *lock(&self.state.behaviour) = behaviour;
    }

    /// Healthy again, with no recorded requests.
    pub fn reset(&self) {
        self.set_behaviour(CollectorBehaviour::default());
        lock(&self.state.requests).clear();
    }
}

impl Drop for MockCollector {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

type CollectorBody = BoxBody<Bytes, Infallible>;

async fn serve(
    listener: TcpListener,
    state: Arc<CollectorState>,
    shutdown: impl Future<Output = ()>,
) {
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        while connections.try_join_next().is_some() {}
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let state = Arc::clone(&state);
        connections.spawn(async move {
            let service = service_fn(move |req| handle(Arc::clone(&state), req));
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    state: Arc<CollectorState>,
    req: Request<Incoming>,
) -> Result<Response<CollectorBody>, Infallible> {
    let (parts, body) = req.into_parts();
    if parts.method != Method::POST || parts.uri.path() != "/v1/traces" {
        return Ok(answer(StatusCode::NOT_FOUND, None, Bytes::new()));
    }
    let Ok(collected) = Limited::new(body, MAX_BODY_BYTES).collect().await else {
        return Ok(answer(StatusCode::PAYLOAD_TOO_LARGE, None, Bytes::new()));
    };
    let body = collected.to_bytes();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let is_json = content_type
        .as_deref()
        .is_some_and(|c| c.starts_with("application/json"));
    let spans = if is_json {
        serde_json::from_slice(&body)
            .map(|v: Value| decode_spans(&v))
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    lock(&state.requests).push(OtlpRequest {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        headers: parts.headers,
        content_type,
        body,
        spans,
        received_at: Instant::now(),
    });
    let behaviour = lock(&state.behaviour).clone();
    if !behaviour.delay.is_zero() {
        tokio::time::sleep(behaviour.delay).await;
    }
    let status = StatusCode::from_u16(behaviour.status).unwrap_or(StatusCode::OK);
    Ok(if !status.is_success() {
        answer(
            status,
            Some("application/json"),
            Bytes::from_static(br#"{"code":14,"message":"unavailable"}"#),
        )
    } else if is_json {
        answer(status, Some("application/json"), Bytes::from_static(b"{}"))
    } else {
        // An empty `ExportTraceServiceResponse` is zero bytes in protobuf.
        answer(status, Some("application/x-protobuf"), Bytes::new())
    })
}

fn answer(
    status: StatusCode,
    content_type: Option<&'static str>,
    body: Bytes,
) -> Response<CollectorBody> {
    let mut res = Response::new(Full::new(body).boxed());
    *res.status_mut() = status;
    if let Some(content_type) = content_type {
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    res
}

/// The spans of an OTLP/JSON `ExportTraceServiceRequest`.
fn decode_spans(request: &Value) -> Vec<OtlpSpan> {
    let mut out = Vec::new();
    for resource_spans in array(request, "resourceSpans") {
        let resource = attributes(&resource_spans["resource"]);
        for scope_spans in array(resource_spans, "scopeSpans") {
            let scope_name = scope_spans["scope"]["name"].as_str().map(str::to_owned);
            for span in array(scope_spans, "spans") {
                let text = |key: &str| span[key].as_str().map(str::to_owned);
                out.push(OtlpSpan {
                    trace_id: text("traceId").unwrap_or_default(),
                    span_id: text("spanId").unwrap_or_default(),
                    parent_span_id: text("parentSpanId").filter(|p| !p.is_empty()),
                    name: text("name").unwrap_or_default(),
                    kind: span["kind"].as_i64(),
                    start_time_unix_nano: text("startTimeUnixNano"),
                    end_time_unix_nano: text("endTimeUnixNano"),
                    status_code: span["status"]["code"].as_i64(),
                    status_message: span["status"]["message"].as_str().map(str::to_owned),
                    attributes: attributes(span),
                    resource: resource.clone(),
                    scope_name: scope_name.clone(),
                    raw: span.clone(),
                });
            }
        }
    }
    out
}

fn array<'v>(value: &'v Value, key: &str) -> impl Iterator<Item = &'v Value> {
    value[key].as_array().into_iter().flatten()
}

/// `attributes: [{key, value: AnyValue}]` → key → the value unwrapped.
fn attributes(holder: &Value) -> BTreeMap<String, Value> {
    array(holder, "attributes")
        .filter_map(|kv| {
            let key = kv["key"].as_str()?.to_owned();
            Some((key, any_value(&kv["value"])))
        })
        .collect()
}

fn any_value(value: &Value) -> Value {
    if let Some(s) = value.get("stringValue") {
        return s.clone();
    }
    if let Some(i) = value.get("intValue") {
        let parsed = match i {
            Value::String(s) => s.parse::<i64>().ok(),
            other => other.as_i64(),
        };
        return parsed.map_or_else(|| i.clone(), Value::from);
    }
    if let Some(d) = value.get("doubleValue") {
        return d.clone();
    }
    if let Some(b) = value.get("boolValue") {
        return b.clone();
    }
    value.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_exports_decode_into_spans_with_unwrapped_attributes() {
        let request = serde_json::json!({
            "resourceSpans": [{
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "gatehouse"}}]},
                "scopeSpans": [{
                    "scope": {"name": "gatehouse.gateway"},
                    "spans": [{
                        "traceId": "0102", "spanId": "03", "parentSpanId": "04", "name": "chat",
                        "kind": 2, "startTimeUnixNano": "1", "endTimeUnixNano": "2",
                        "attributes": [
                            {"key": "i", "value": {"intValue": "-7"}},
                            {"key": "d", "value": {"doubleValue": 0.5}},
                            {"key": "b", "value": {"boolValue": true}},
                            {"key": "s", "value": {"stringValue": "x"}},
                        ],
                        "status": {"code": 2, "message": "boom"},
                    }],
                }],
            }],
        });
        let spans = decode_spans(&request);
        assert_eq!(spans.len(), 1);
        let span = &spans[0];
        assert_eq!(
            (
                span.trace_id.as_str(),
                span.span_id.as_str(),
                span.parent_span_id.as_deref()
            ),
            ("0102", "03", Some("04"))
        );
        assert_eq!((span.kind, span.status_code), (Some(2), Some(2)));
        assert_eq!(span.status_message.as_deref(), Some("boom"));
        assert_eq!(span.attributes["i"], serde_json::json!(-7));
        assert_eq!(span.attributes["d"], serde_json::json!(0.5));
        assert_eq!(span.attributes["b"], serde_json::json!(true));
        assert_eq!(span.attributes["s"], serde_json::json!("x"));
        assert_eq!(
            span.resource["service.name"],
            serde_json::json!("gatehouse")
        );
        assert_eq!(span.scope_name.as_deref(), Some("gatehouse.gateway"));
    }
}
