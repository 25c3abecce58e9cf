//! Tests of the mock providers themselves: the wire formats as SDKs read them, the controls, the timing.

mod controls;
mod formats;
mod sdk;
mod support;
