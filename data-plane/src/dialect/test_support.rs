//! What the codecs' tests against the mock providers share: a streamed answer decoded as its bytes arrive, and the
//! events folded into the whole answer they must agree with.

use futures_util::StreamExt as _;

use super::chat::{ChatResponse, StreamEvent};
use super::codec::ChatCodec;

/// Decodes a streamed provider answer with `codec`, chunk by chunk as the network delivers it.
pub(crate) async fn decode_stream(
    codec: &dyn ChatCodec,
    res: reqwest::Response,
) -> Vec<StreamEvent> {
    let mut decoder = codec.stream_decoder();
    let mut events = Vec::new();
    let mut body = res.bytes_stream();
    while let Some(chunk) = body.next().await {
        decoder.feed(&chunk.unwrap(), &mut events);
    }
    decoder.finish(true, &mut events);
    events
}

/// The stream's events folded into what a non-streamed answer says; tool calls must come in index order.
pub(crate) fn fold_in_order(events: &[StreamEvent]) -> ChatResponse {
    let starts = events.iter().filter_map(|e| match e {
        StreamEvent::ToolCallStart { index, .. } => Some(*index as usize),
        _ => None,
    });
    assert!(
        starts.enumerate().all(|(i, index)| i == index),
        "{events:?}"
    );
    ChatResponse::from_events(events).unwrap()
}
