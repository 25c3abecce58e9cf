//! Response bodies: whole JSON documents, and SSE streams written one event per chunk, each flushed on its own.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::BodyExt as _;
use http_body_util::Full;
use http_body_util::combinators::BoxBody;
use hyper::body::{Body, Frame, SizeHint};
use serde_json::Value;
use tokio::time::Sleep;

/// Every response the mock sends has this body type.
pub(crate) type MockBody = BoxBody<Bytes, Infallible>;

pub(crate) const EVENT_STREAM: &str = "text/event-stream; charset=utf-8";

/// A JSON response with a `content-length`.
pub(crate) fn json(status: StatusCode, value: &Value) -> Response<MockBody> {
    let mut res = Response::new(Full::new(Bytes::from(value.to_string())).boxed());
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// A chunked `text/event-stream` response of already framed events.
pub(crate) fn event_stream(events: Vec<Bytes>, delay: Duration) -> Response<MockBody> {
    let mut res = Response::new(EventBody::new(events, delay).boxed());
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(EVENT_STREAM));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

/// `data: {json}\n\n`, OpenAI chat completions' framing.
pub(crate) fn data_event(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

/// `event: {name}\ndata: {json}\n\n`, the framing of Anthropic and of OpenAI Responses.
pub(crate) fn named_event(name: &str, value: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {value}\n\n"))
}

/// Yields one SSE event per frame, waiting `delay` between events.
///
/// hyper writes every frame it can get before it flushes, so events that are ready together would leave in one
/// write. After each frame this body reports `Pending` once (sleeping, or waking itself at once when there is no
/// delay), which makes hyper flush: every event is its own HTTP chunk and its own write, as a real provider
/// streaming tokens produces, and a test can see the first event while the mock still holds the rest.
struct EventBody {
    events: VecDeque<Bytes>,
    delay: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    flush_first: bool,
}

impl EventBody {
    fn new(events: Vec<Bytes>, delay: Duration) -> EventBody {
        EventBody {
            events: events.into(),
            delay,
            sleep: None,
            flush_first: false,
        }
    }
}

impl Body for EventBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if let Some(sleep) = this.sleep.as_mut() {
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.sleep = None;
        }
        if this.flush_first {
            this.flush_first = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let Some(event) = this.events.pop_front() else {
            return Poll::Ready(None);
        };
        if !this.events.is_empty() {
            if this.delay.is_zero() {
                this.flush_first = true;
            } else {
                this.sleep = Some(Box::pin(tokio::time::sleep(this.delay)));
            }
        }
        Poll::Ready(Some(Ok(Frame::data(event))))
    }

    fn is_end_stream(&self) -> bool {
        self.events.is_empty() && self.sleep.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        // Not exact on purpose: an exact hint would make hyper send `content-length` instead of chunked encoding.
        SizeHint::default()
    }
}
