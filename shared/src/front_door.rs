//! The front door: what `GET /` answers on both listeners, instead of a bare 404.
//!
//! It says what the service is, its version, and where the documentation and probes are: JSON for API clients, a
//! small self-contained HTML page (no external assets) for browsers. The content lives here, as data, so that the
//! management API (actix) and the inference listener (pingora) say the same thing and only do the HTTP part
//! themselves: both call [`render`] with the request's `Accept` header and answer `200` with the page's content
//! type and body, plus `Vary: Accept` (the body depends on that header).

use serde::ser::{Serialize, SerializeMap, Serializer};

/// The name every front door starts with.
pub const SERVICE: &str = "gatehouse";

/// Which listener is answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The Cloudflare v4-compatible management API (control plane).
    ManagementApi,
    /// The inference listener (data plane).
    Inference,
}

/// One place the front door points to.
struct Link {
    /// Its key in the JSON body.
    key: &'static str,
    /// A path on this listener, or a path template (`{…}` placeholders).
    path: &'static str,
    /// What it is, for the HTML page.
    label: &'static str,
    /// Whether a browser can follow it as it is (a plain `GET` of a concrete path that answers).
    followable: bool,
}

impl Listener {
    /// The `component` the JSON names and the HTML page's heading.
    pub fn component(self) -> &'static str {
        match self {
            Self::ManagementApi => "management API",
            Self::Inference => "inference",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Self::ManagementApi => {
                "Self-hostable AI gateway. This listener serves the management API, wire-compatible with \
                 Cloudflare AI Gateway's v4 API: point Cloudflare's SDKs or Terraform provider at /client/v4 with a \
                 Gatehouse token."
            }
            Self::Inference => {
                "Self-hostable AI gateway. This listener serves inference: requests to \
                 /v1/{account}/{gateway}/{provider}/… go to the provider in its own format. Gateways, keys and \
                 tokens are managed through the management API, which serves the API documentation."
            }
        }
    }

    // Only endpoints the listener really serves: the control plane's routes (`control-plane/src/api.rs`, Swagger
    // UI in `server.rs`) and the data plane's (`data-plane/src/proxy/endpoint.rs`). The management API's test
    // follows every followable link.
    fn links(self) -> &'static [Link] {
        match self {
            Self::ManagementApi => &[
                Link {
                    key: "api",
                    path: "/client/v4",
                    label: "Cloudflare v4-compatible API (Bearer token)",
                    followable: false,
                },
                Link {
                    key: "docs",
                    path: "/client/v4/docs/",
                    label: "API documentation (Swagger UI)",
                    followable: true,
                },
                Link {
                    key: "openapi",
                    path: "/client/v4/openapi.json",
                    label: "OpenAPI document",
                    followable: true,
                },
                Link {
                    key: "health",
                    path: "/healthz",
                    label: "Liveness",
                    followable: true,
                },
            ],
            Self::Inference => &[
                Link {
                    key: "inference",
                    path: "/v1/{account}/{gateway}/{provider}/{path}",
                    label: "Provider-native inference",
                    followable: false,
                },
                Link {
                    key: "universal",
                    path: "/v1/{account}/{gateway}",
                    label: "Universal endpoint (POST)",
                    followable: false,
                },
                Link {
                    key: "health",
                    path: "/healthz",
                    label: "Liveness",
                    followable: true,
                },
                Link {
                    key: "ready",
                    path: "/readyz",
                    label: "Readiness (configuration loaded)",
                    followable: true,
                },
                // Not on this listener: the data plane does not know where the management API is reachable.
                Link {
                    key: "management_api_docs",
                    path: "/client/v4/docs/",
                    label: "API documentation, on the management API listener",
                    followable: false,
                },
            ],
        }
    }
}

/// Which representation a client gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    Json,
    Html,
}

impl Representation {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Html => "text/html; charset=utf-8",
        }
    }
}

/// A rendered front door, ready to send with status 200 and `Vary: Accept`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub representation: Representation,
    pub content_type: &'static str,
    pub body: String,
}

/// The front door of `listener` for a request whose `Accept` header is `accept` (`None` when absent; several
/// `Accept` fields joined with `", "`). `version` is the workspace's `CARGO_PKG_VERSION`.
pub fn render(listener: Listener, version: &str, accept: Option<&str>) -> Page {
    let representation = negotiate(accept);
    let body = match representation {
        Representation::Json => json_body(listener, version),
        Representation::Html => html_body(listener, version),
    };
    Page {
        representation,
        content_type: representation.content_type(),
        body,
    }
}

/// HTML when the client prefers `text/html` to `application/json` (a browser), JSON otherwise: on a tie (`*/*`,
/// curl's default), without the header, or when it accepts neither, since API clients rarely ask for anything.
///
/// Each type gets the q-value of the most specific media range that matches it (`type/subtype`, then `type/*`,
/// then `*/*`; RFC 9110 §12.5.1). A range with a malformed q-value is ignored.
pub fn negotiate(accept: Option<&str>) -> Representation {
    let Some(accept) = accept else {
        return Representation::Json;
    };
    if quality(accept, "text", "html") > quality(accept, "application", "json") {
        Representation::Html
    } else {
        Representation::Json
    }
}

/// The q-value, in thousandths, that `accept` gives `ty/subtype` (0: not acceptable).
fn quality(accept: &str, ty: &str, subtype: &str) -> u16 {
    // (specificity, q) of the best match so far.
    let mut best: Option<(u8, u16)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let Some((range_type, range_subtype)) = parts.next().and_then(|m| m.trim().split_once('/'))
        else {
            continue;
        };
        let (range_type, range_subtype) = (range_type.trim(), range_subtype.trim());
        let specificity = if range_type == "*" && range_subtype == "*" {
            0
        } else if !range_type.eq_ignore_ascii_case(ty) {
            continue;
        } else if range_subtype == "*" {
            1
        } else if range_subtype.eq_ignore_ascii_case(subtype) {
            2
        } else {
            continue;
        };
        let mut q = Some(1000);
        for param in parts {
            if let Some((name, value)) = param.split_once('=')
                && name.trim().eq_ignore_ascii_case("q")
            {
                q = parse_q(value.trim());
                break;
            }
        }
        let Some(q) = q else { continue };
        if best.is_none_or(|(s, best_q)| specificity > s || (specificity == s && q > best_q)) {
            best = Some((specificity, q));
        }
    }
    best.map_or(0, |(_, q)| q)
}

/// A qvalue (`0`, `0.5`, `1.000`; at most three decimals, at most 1) in thousandths.
fn parse_q(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u16 = match whole {
        "0" => 0,
        "1" => 1000,
        _ => return None,
    };
    let fraction = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u16, |n, b| n * 10 + u16::from(b - b'0'));
    let q = whole + fraction;
    (q <= 1000).then_some(q)
}

/// The JSON body: `service`, `component`, `version`, `description`, then one key per place (path or template).
pub fn json_body(listener: Listener, version: &str) -> String {
    let mut body = serde_json::to_string_pretty(&JsonDocument { listener, version })
        .expect("a map of strings always serialises");
    body.push('\n');
    body
}

/// Serialised by hand so the keys keep the table's order (`serde_json::Map` would sort them).
struct JsonDocument<'a> {
    listener: Listener,
    version: &'a str,
}

impl Serialize for JsonDocument<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let links = self.listener.links();
        let mut map = serializer.serialize_map(Some(4 + links.len()))?;
        map.serialize_entry("service", SERVICE)?;
        map.serialize_entry("component", self.listener.component())?;
        map.serialize_entry("version", self.version)?;
        map.serialize_entry("description", self.listener.description())?;
        for link in links {
            map.serialize_entry(link.key, link.path)?;
        }
        map.end()
    }
}

/// The HTML page: one file, inline style, no scripts or external assets. Every interpolated text is escaped.
pub fn html_body(listener: Listener, version: &str) -> String {
    let component = escape_html(listener.component());
    let mut rows = String::new();
    for link in listener.links() {
        let path = escape_html(link.path);
        let target = if link.followable {
            format!("<a href=\"{path}\"><code>{path}</code></a>")
        } else {
            format!("<code>{path}</code>")
        };
        rows.push_str(&format!(
            "<dt>{}</dt><dd>{target}</dd>\n",
            escape_html(link.label)
        ));
    }
    format!(
        "<!doctype html>\n\
         <html lang=\"en\">\n\
         <head>\n\
         <meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Gatehouse {component}</title>\n\
         <style>\
         body{{font-family:system-ui,sans-serif;max-width:42rem;margin:3rem auto;padding:0 1rem;line-height:1.5;\
         color:#1f2328;background:#fff}}\
         h1 small{{font-weight:normal;color:#59636e}}\
         code{{background:#f0f2f4;padding:0 .25rem;border-radius:3px}}\
         dt{{font-weight:600;margin-top:.75rem}}dd{{margin:0}}\
         </style>\n\
         </head>\n\
         <body>\n\
         <h1>Gatehouse <small>{component}</small></h1>\n\
         <p>{description}</p>\n\
         <p>Version <code>{version}</code></p>\n\
         <dl>\n{rows}</dl>\n\
         </body>\n\
         </html>\n",
        description = escape_html(listener.description()),
        version = escape_html(version),
    )
}

/// Text made safe for HTML element content and double-quoted attribute values.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use Representation::{Html, Json};

    #[test]
    fn browsers_get_html_and_everything_else_json() {
        let cases = [
            (None, Json),
            (Some(""), Json),
            (Some("*/*"), Json),
            (Some("application/json"), Json),
            (Some("text/html"), Html),
            (Some("TEXT/HTML"), Html),
            (Some("text/html; charset=utf-8"), Html),
            (Some("text/*"), Html),
            (Some("application/*"), Json),
            (Some("image/png"), Json),
            // Firefox and Chrome.
            (
                Some("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
                Html,
            ),
            (
                Some(
                    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,\
                     image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7",
                ),
                Html,
            ),
            // A tie goes to JSON.
            (Some("text/html, application/json"), Json),
            (Some("application/json, text/html"), Json),
            // q-values decide, wherever the ranges stand.
            (Some("application/json;q=0.5, text/html"), Html),
            (Some("text/html;q=0.5, application/json"), Json),
            (Some("text/html;q=0.9, */*;q=0.8"), Html),
            (Some("text/html ; Q=1.0 , application/json ; q=0.999"), Html),
            // The most specific range wins over `*/*`, even with a lower q.
            (Some("*/*, application/json;q=0.1"), Html),
            (Some("*/*, text/html;q=0.1"), Json),
            // q=0 refuses a type.
            (Some("text/html;q=0"), Json),
            (Some("*/*;q=0, text/html"), Html),
            // Parameters other than q do not change the type.
            (
                Some("text/html;level=1;q=0.9, application/json;q=0.8"),
                Html,
            ),
        ];
        for (accept, expected) in cases {
            assert_eq!(negotiate(accept), expected, "{accept:?}");
        }
    }

    #[test]
    fn malformed_ranges_and_q_values_are_ignored() {
        for accept in [
            "text/html;q=2",
            "text/html;q=1.5",
            "text/html;q=0.5555",
            "text/html;q=abc",
            "text/html;q=",
            "text/html;q=-1",
            "html",
            ",,;",
            "text/html;q=0.9x",
        ] {
            assert_eq!(negotiate(Some(accept)), Json, "{accept:?}");
        }
        assert_eq!(
            negotiate(Some("text/html;q=2, text/html;q=0.3")),
            Html,
            "the valid range of the two counts"
        );
        assert_eq!(parse_q("0.5"), Some(500));
        assert_eq!(parse_q("0.05"), Some(50));
        assert_eq!(parse_q("1.000"), Some(1000));
        assert_eq!(parse_q("1.001"), None);
        assert_eq!(parse_q("0."), Some(0));
    }

    #[test]
    fn the_json_names_the_service_version_and_real_paths_in_order() {
        let body: serde_json::Value =
            serde_json::from_str(&json_body(Listener::ManagementApi, "1.2.3")).unwrap();
        assert_eq!(body["service"], "gatehouse");
        assert_eq!(body["component"], "management API");
        assert_eq!(body["version"], "1.2.3");
        assert_eq!(body["api"], "/client/v4");
        assert_eq!(body["docs"], "/client/v4/docs/");
        assert_eq!(body["openapi"], "/client/v4/openapi.json");
        assert_eq!(body["health"], "/healthz");

        let text = json_body(Listener::Inference, "1.2.3");
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["component"], "inference");
        assert_eq!(body["health"], "/healthz");
        assert_eq!(body["ready"], "/readyz");
        assert_eq!(
            body["inference"],
            "/v1/{account}/{gateway}/{provider}/{path}"
        );
        assert_eq!(body["universal"], "/v1/{account}/{gateway}");
        // Pretty-printed, one key a line: identity first, then the table's order.
        let keys: Vec<&str> = text
            .lines()
            .filter_map(|line| line.trim().strip_prefix('"')?.split_once('"'))
            .map(|(key, _)| key)
            .collect();
        assert_eq!(
            keys,
            [
                "service",
                "component",
                "version",
                "description",
                "inference",
                "universal",
                "health",
                "ready",
                "management_api_docs"
            ]
        );
    }

    #[test]
    fn the_html_is_self_contained_and_escapes_what_it_interpolates() {
        for listener in [Listener::ManagementApi, Listener::Inference] {
            let html = html_body(listener, "1.2.3");
            assert!(html.starts_with("<!doctype html>"), "{html}");
            assert!(html.contains(&format!("<small>{}</small>", listener.component())));
            assert!(html.contains("<code>1.2.3</code>"));
            for external in ["<script", "<link", "src=", "http://", "https://", "@import"] {
                assert!(!html.contains(external), "{external} in {html}");
            }
        }
        let html = html_body(Listener::ManagementApi, "<script>alert(\"x\")</script>&'");
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"),
            "{html}"
        );
        let html = html_body(Listener::ManagementApi, "1");
        assert!(html.contains("<a href=\"/client/v4/docs/\"><code>/client/v4/docs/</code></a>"));
        assert!(html.contains("<a href=\"/healthz\">"));
        assert!(
            !html.contains("<a href=\"/client/v4\">"),
            "a route that needs a token is not a link"
        );
        let html = html_body(Listener::Inference, "1");
        assert!(html.contains("<a href=\"/readyz\">"));
        assert!(
            !html.contains("<a href=\"/client/v4/docs/\">"),
            "the docs are on the other listener: no link that would 404 here"
        );
    }

    #[test]
    fn render_pairs_the_body_with_its_content_type() {
        let page = render(Listener::Inference, "9.9.9", Some("text/html"));
        assert_eq!(page.representation, Html);
        assert_eq!(page.content_type, "text/html; charset=utf-8");
        assert_eq!(page.body, html_body(Listener::Inference, "9.9.9"));
        let page = render(Listener::Inference, "9.9.9", None);
        assert_eq!(page.content_type, "application/json");
        assert_eq!(page.body, json_body(Listener::Inference, "9.9.9"));
    }

    #[test]
    fn escaping_covers_the_five_special_characters() {
        assert_eq!(escape_html("a<b>&\"'c"), "a&lt;b&gt;&amp;&quot;&#39;c");
        assert_eq!(escape_html("plain {x} …"), "plain {x} …");
    }
}
