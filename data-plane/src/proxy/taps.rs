//! The response tap chain: the stages a response passes on its way downstream (pingora's `HttpModule` body
//! filters, Envoy's encoder filters). The relay (`upstream.rs`, and the cached answer in `phase/relay.rs`) calls
//! every tap in the chain's order with the response header, each body chunk and the end; it knows no tap by name.
//!
//! Today's taps only look (the log record's capture and usage scan in `record.rs`, the cache tee in
//! `phase/cache.rs`). Taps that rewrite (protocol translation, streaming guardrails) will come before the
//! observers, so that what is logged and cached is what the client got; `phase/relay.rs` fixes that order.

use pingora::http::ResponseHeader;

/// One stage of a response on its way downstream.
pub(crate) trait ResponseTap: Send {
    /// The response header, before it is written downstream.
    fn header(&mut self, head: &ResponseHeader);
    /// One body chunk, before it is written downstream.
    fn chunk(&mut self, chunk: &[u8]);
    /// The response is over: `complete` when the whole body was relayed, `false` when it was cut.
    fn end(&mut self, complete: bool);
}
