//! The phases of an inference request, in the order `pipeline.rs` calls them. Each is a module of free functions
//! with a narrow input and output; none imports the pipeline or a later phase's internals, and none writes a
//! response except `relay` (the answer) and the pipeline (a gateway error, rendered once).
//!
//! | phase | takes | gives |
//! |---|---|---|
//! | `admit` | the request header, the node's config and readiness, the replay cache | `Admitted`: snapshot, gateway, caller, the key or identity |
//! | `limits` (rate) | the gateway's settings | admitted or 429 |
//! | `body` | the session, the body cap | `RequestBody`: bytes and their peek |
//! | `plan` | the gateway, the route, the body | the steps: target, upstream header, retry, timeout, cache plan |
//! | `access` (models, rates) | the virtual key or identity, the steps | 403, 429, or the token windows to charge |
//! | `cache` (lookup) | the first step's cache plan | a `CachedResponse` or nothing |
//! | `limits` (spend) | the steps | the steps within budget and their charges |
//! | `access` (budgets) | the key or identity, the first step | the budget hold, or 429 |
//! | `attempts` | the steps | `Outcome`: the answering step's opened response, or the failure |
//! | `relay` | the opened response or the cached one | the response sent, through the tap chain |
//! | `account` | the request context | the log record(s), the spend charge, the metrics and the OTLP span (pingora's `logging` phase) |

pub(crate) mod access;
pub(crate) mod account;
pub(crate) mod admit;
pub(crate) mod attempts;
pub(crate) mod body;
pub(crate) mod cache;
pub(crate) mod limits;
pub(crate) mod plan;
pub(crate) mod relay;
pub(crate) mod route;
