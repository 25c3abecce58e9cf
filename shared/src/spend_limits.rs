//! Spend-limit rules (spec §1.2 `spend_limits`, §3.15), typed for the data plane.
//!
//! The control plane validates the object on write and stores it as JSON (`GatewaySettings::spend_limits`); every
//! node parses it here into [`SpendLimits`] when it compiles a gateway document. Parsing accepts everything the
//! validator accepts, so a document the API took is never refused by a node for its spend limits; what it refuses
//! (a `limitType` other than `cost`, a dimension mode it does not know) is what it could not enforce.
//!
//! Every node must reach the same rule ids and buckets from the same document, because buckets name the shared
//! spend counters (`spend:{account}:{gateway}:{bucket}`). Hence derived ids are hashes of content, never random.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde_json::{Map, Value, json};
use sha2::Digest as _;

/// A gateway's spend limits: the `spend_limits` settings object, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct SpendLimits {
    /// The switch of the whole object (default false): when off no rule applies.
    pub enabled: bool,
    /// In the order the user wrote them, so the first exceeded rule named in a refusal is predictable.
    pub rules: Vec<SpendRule>,
}

/// One budget: at most `limit_usd` of cost per `window`, over the requests its filters select.
#[derive(Debug, Clone, PartialEq)]
pub struct SpendRule {
    /// The user's id, or one derived from the rule's content (see [`SpendLimits::from_settings`]).
    pub id: String,
    pub enabled: bool,
    /// US dollars; requests are refused once the cost counted in the window reaches it.
    pub limit_usd: f64,
    /// Whole seconds (Cloudflare's windows are lengths, not calendar periods).
    pub window: Duration,
    pub technique: SpendTechnique,
    /// Provider models the rule is limited to; `None` counts every model.
    pub model: Option<Vec<String>>,
    /// Provider slugs the rule is limited to; `None` counts every provider.
    pub provider: Option<Vec<String>>,
    /// Metadata dimensions (`cf-aig-metadata` keys), sorted by key so buckets are named the same on every node.
    pub metadata: Vec<(String, MetadataDimension)>,
}

/// How a rule's window moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendTechnique {
    /// Consecutive windows of `window` seconds; the count restarts at each boundary.
    Fixed,
    /// The cost of the trailing `window` seconds (Cloudflare's default).
    Sliding,
}

impl SpendTechnique {
    /// The wire name, as Cloudflare's refusal message prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            SpendTechnique::Fixed => "fixed",
            SpendTechnique::Sliding => "sliding",
        }
    }
}

/// What a rule does with one metadata key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataDimension {
    /// Every value of the key gets its own budget (`{"mode":"partition"}`).
    Partition,
    /// The rule applies only when the key has one of these values (`{"mode":"filter","values":[..]}`), compared as
    /// text: numbers and booleans in either place are written as JSON writes them.
    Filter(Vec<String>),
}

/// A rule that applies to a request, and the counter it is checked and charged against.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplicableRule<'a> {
    pub rule: &'a SpendRule,
    /// `{rule_id}` for a rule without partitions, else `{rule_id}:{key}={value}` per partition key in key order,
    /// every part escaped (`%`, `:`, `=`, `#`) so no two rules or values can name the same bucket; a part longer
    /// than [`MAX_BUCKET_PART`] bytes is replaced by `#` and a hash of it. Two rules that share an explicit id
    /// share their buckets, so the caller should charge each distinct bucket once per request.
    pub bucket: String,
}

/// The longest escaped rule id, metadata key or value kept verbatim in a bucket name; longer ones are hashed so a
/// long metadata value cannot make counter keys arbitrarily large.
pub const MAX_BUCKET_PART: usize = 64;

impl SpendLimits {
    /// Parses the `spend_limits` settings object. Unknown fields are ignored and `null` counts as absent.
    ///
    /// A rule without an `id` gets the first 8 hex digits of the SHA-256 of the canonical JSON (sorted keys) of
    /// what it counts: window, technique and filters, as parsed, so defaults written out or left implicit give the
    /// same id. Every node derives the same id, and raising or pausing a budget keeps what was already spent,
    /// while a rule that counts something else starts a fresh count. Should two rules derive the same id (or one
    /// derive an explicit id), the later one hashes again with a counter.
    pub fn from_settings(value: &Value) -> Result<SpendLimits, String> {
        let obj = value
            .as_object()
            .ok_or("spend_limits: expected an object")?;
        let enabled = optional_bool(obj, "enabled", "spend_limits.enabled")?.unwrap_or(false);
        let raw_rules: &[Value] = match present(obj, "rules") {
            None => &[],
            Some(Value::Array(items)) => items,
            Some(_) => return Err("spend_limits.rules: expected an array".into()),
        };
        let mut parsed = Vec::with_capacity(raw_rules.len());
        for (i, raw) in raw_rules.iter().enumerate() {
            let ro = raw
                .as_object()
                .ok_or_else(|| format!("spend_limits.rules.{i}: expected an object"))?;
            parsed.push(parse_rule(ro, &format!("spend_limits.rules.{i}"))?);
        }
        // Explicit ids first, so a derived id never takes one the user chose.
        let mut taken: HashSet<String> = parsed
            .iter()
            .filter_map(|(explicit, _)| explicit.clone())
            .collect();
        let rules = parsed
            .into_iter()
            .map(|(explicit, rule)| {
                let id = explicit.unwrap_or_else(|| {
                    let id = derive_id(&rule.identity(), &taken);
                    taken.insert(id.clone());
                    id
                });
                SpendRule { id, ..rule }
            })
            .collect();
        Ok(SpendLimits { enabled, rules })
    }

    /// Whether any rule can apply: the object is enabled and at least one rule is.
    pub fn is_active(&self) -> bool {
        self.enabled && self.rules.iter().any(|r| r.enabled)
    }

    /// The enabled rules whose filters all match the request, in rule order, each with its bucket.
    ///
    /// A model filter does not match a request without a model. Metadata values are compared as text (string,
    /// number and boolean values; any other value never matches). A request that lacks a partition key is not
    /// counted by that rule: "each distinct value gets its own budget", and an absent key has no value. The
    /// alternative, one shared bucket for every request without the key, would let any unlabelled caller spend
    /// the budget of all the others; an operator who wants to cap unlabelled traffic adds a rule without the
    /// partition.
    pub fn applicable(
        &self,
        provider: &str,
        model: Option<&str>,
        metadata: &Map<String, Value>,
    ) -> Vec<ApplicableRule<'_>> {
        if !self.enabled {
            return Vec::new();
        }
        self.rules
            .iter()
            .filter(|rule| rule.enabled)
            .filter_map(|rule| {
                rule.bucket_for(provider, model, metadata)
                    .map(|bucket| ApplicableRule { rule, bucket })
            })
            .collect()
    }
}

impl SpendRule {
    /// The bucket of this rule for a request, or `None` when its filters do not select the request.
    fn bucket_for(
        &self,
        provider: &str,
        model: Option<&str>,
        metadata: &Map<String, Value>,
    ) -> Option<String> {
        if let Some(providers) = &self.provider
            && !providers.iter().any(|p| p == provider)
        {
            return None;
        }
        if let Some(models) = &self.model
            && !model.is_some_and(|m| models.iter().any(|v| v == m))
        {
            return None;
        }
        let mut bucket = bucket_part(&self.id);
        for (key, dimension) in &self.metadata {
            let value = metadata.get(key).and_then(scalar_text)?;
            match dimension {
                MetadataDimension::Filter(values) => {
                    if !values.contains(&value) {
                        return None;
                    }
                }
                MetadataDimension::Partition => {
                    bucket.push(':');
                    bucket.push_str(&bucket_part(key));
                    bucket.push('=');
                    bucket.push_str(&bucket_part(&value));
                }
            }
        }
        Some(bucket)
    }

    /// What the rule counts, as canonical JSON: the input of a derived id. Leaves out the id, the limit and the
    /// switch, which change how much may be spent but not what is counted.
    fn identity(&self) -> String {
        let metadata: Vec<Value> = self
            .metadata
            .iter()
            .map(|(key, dimension)| match dimension {
                MetadataDimension::Partition => json!([key, "partition"]),
                MetadataDimension::Filter(values) => json!([key, "filter", values]),
            })
            .collect();
        canonical_json(&json!({
            "window": self.window.as_secs(),
            "technique": self.technique.as_str(),
            "model": self.model,
            "provider": self.provider,
            "metadata": metadata,
        }))
    }

    /// The body message of a refusal (429, code 2041), worded as Cloudflare's:
    /// `Spend limit exceeded: rule '<id>' (cost limit N per Ws, sliding) for <provider> <model>`. The limit is
    /// printed as JavaScript prints a number (`10`, `0.5`), which is how the user wrote it in the usual cases; a
    /// request without a model ends after the provider.
    pub fn exceeded_message(&self, provider: &str, model: Option<&str>) -> String {
        let mut message = format!(
            "Spend limit exceeded: rule '{}' (cost limit {} per {}s, {}) for {provider}",
            self.id,
            self.limit_usd,
            self.window.as_secs(),
            self.technique.as_str(),
        );
        if let Some(model) = model {
            message.push(' ');
            message.push_str(model);
        }
        message
    }
}

/// A parsed rule with an empty id, and the id the user gave it.
fn parse_rule(ro: &Map<String, Value>, path: &str) -> Result<(Option<String>, SpendRule), String> {
    let explicit = match present(ro, "id") {
        None => None,
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(_) => return Err(format!("{path}.id: expected a non-empty string")),
    };
    let enabled = optional_bool(ro, "enabled", &format!("{path}.enabled"))?.unwrap_or(true);
    let limit_usd = present(ro, "limit")
        .and_then(Value::as_f64)
        .filter(|l| l.is_finite() && *l >= 0.0)
        .ok_or_else(|| format!("{path}.limit: expected a number ≥ 0"))?;
    match present(ro, "limitType") {
        None => {}
        Some(Value::String(t)) if t == "cost" => {}
        Some(other) => {
            return Err(format!(
                "{path}.limitType: only 'cost' is supported, got {other}"
            ));
        }
    }
    let window = present(ro, "window")
        .and_then(whole_seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{path}.window: expected a whole number of seconds ≥ 0"))?;
    let technique = match present(ro, "technique") {
        None => SpendTechnique::Sliding,
        Some(Value::String(t)) if t == "sliding" => SpendTechnique::Sliding,
        Some(Value::String(t)) if t == "fixed" => SpendTechnique::Fixed,
        Some(other) => {
            return Err(format!(
                "{path}.technique: expected 'fixed' or 'sliding', got {other}"
            ));
        }
    };
    let model = filter_dimension(ro, "model", path)?;
    let provider = filter_dimension(ro, "provider", path)?;
    let metadata = match present(ro, "metadata") {
        None => Vec::new(),
        Some(Value::Object(dims)) => {
            // Sorted by key, whatever order the map keeps, so buckets are named alike on every node.
            let sorted: BTreeMap<&String, &Value> = dims.iter().collect();
            sorted
                .into_iter()
                .map(|(key, dim)| {
                    metadata_dimension(dim, &format!("{path}.metadata.{key}"))
                        .map(|d| (key.clone(), d))
                })
                .collect::<Result<_, _>>()?
        }
        Some(_) => return Err(format!("{path}.metadata: expected an object")),
    };
    let rule = SpendRule {
        id: String::new(),
        enabled,
        limit_usd,
        window,
        technique,
        model,
        provider,
        metadata,
    };
    Ok((explicit, rule))
}

/// `model` and `provider`: absent, or `{"mode":"filter","values":[string, ..]}`.
fn filter_dimension(
    ro: &Map<String, Value>,
    name: &str,
    path: &str,
) -> Result<Option<Vec<String>>, String> {
    let Some(dim) = present(ro, name) else {
        return Ok(None);
    };
    let fail =
        || format!("{path}.{name}: expected {{\"mode\":\"filter\",\"values\":[string, ..]}}");
    let d = dim.as_object().ok_or_else(fail)?;
    if d.get("mode").and_then(Value::as_str) != Some("filter") {
        return Err(fail());
    }
    let values = d.get("values").and_then(Value::as_array).ok_or_else(fail)?;
    values
        .iter()
        .map(|v| v.as_str().map(str::to_owned).ok_or_else(fail))
        .collect::<Result<_, _>>()
        .map(Some)
}

fn metadata_dimension(dim: &Value, path: &str) -> Result<MetadataDimension, String> {
    let fail = || {
        format!(
            "{path}: expected {{\"mode\":\"partition\"}} or {{\"mode\":\"filter\",\"values\":[..]}}"
        )
    };
    match dim.get("mode").and_then(Value::as_str) {
        Some("partition") => Ok(MetadataDimension::Partition),
        Some("filter") => {
            let values = dim
                .get("values")
                .and_then(Value::as_array)
                .ok_or_else(fail)?;
            // The validator accepts any array here; values that are not text, numbers or booleans can never
            // equal a metadata value, so they are dropped rather than refusing a document the API took.
            Ok(MetadataDimension::Filter(
                values.iter().filter_map(scalar_text).collect(),
            ))
        }
        _ => Err(fail()),
    }
}

/// A field that is there and not `null`.
fn present<'v>(obj: &'v Map<String, Value>, name: &str) -> Option<&'v Value> {
    obj.get(name).filter(|v| !v.is_null())
}

fn optional_bool(obj: &Map<String, Value>, name: &str, path: &str) -> Result<Option<bool>, String> {
    match present(obj, name) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(format!("{path}: expected a boolean")),
    }
}

/// A non-negative integer, also when written as a float without a fraction (`3600.0`), as the validator allows.
fn whole_seconds(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < 9.0e15)
            .map(|f| f as u64)
    })
}

/// The text a metadata value is compared and bucketed by; `None` for values metadata cannot hold.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// One part of a bucket name: `%`, `:`, `=` and `#` percent-escaped so the separators stay unambiguous, or `#`
/// and 32 hex digits of its SHA-256 when the escaped form is longer than [`MAX_BUCKET_PART`]. An escaped part
/// never contains a bare `#`, so a verbatim part cannot equal a hashed one.
fn bucket_part(raw: &str) -> String {
    let mut escaped = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '%' => escaped.push_str("%25"),
            ':' => escaped.push_str("%3A"),
            '=' => escaped.push_str("%3D"),
            '#' => escaped.push_str("%23"),
            c => escaped.push(c),
        }
    }
    if escaped.len() <= MAX_BUCKET_PART {
        return escaped;
    }
    let digest = sha2::Sha256::digest(raw.as_bytes());
    format!("#{}", hex::encode(&digest[..16]))
}

/// The first free id among `hash(identity)`, `hash(identity#1)`, `hash(identity#2)`, …
fn derive_id(identity: &str, taken: &HashSet<String>) -> String {
    (0u64..)
        .map(|n| {
            let input = if n == 0 {
                identity.to_owned()
            } else {
                format!("{identity}#{n}")
            };
            hex::encode(&sha2::Sha256::digest(input.as_bytes())[..4])
        })
        .find(|id| !taken.contains(id))
        .expect("an unbounded sequence of ids has a free one")
}

/// JSON with object keys sorted at every level, independent of the map order serde_json was built with.
fn canonical_json(v: &Value) -> String {
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(map) => {
                let sorted: BTreeMap<&String, &Value> = map.iter().collect();
                out.push('{');
                for (i, (k, v)) in sorted.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    write(v, out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    let mut out = String::new();
    write(v, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(v: Value) -> SpendLimits {
        SpendLimits::from_settings(&v).unwrap()
    }

    fn meta(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn buckets(l: &SpendLimits, provider: &str, model: Option<&str>, m: Value) -> Vec<String> {
        l.applicable(provider, model, &meta(m))
            .into_iter()
            .map(|a| a.bucket)
            .collect()
    }

    #[test]
    fn a_rule_reads_its_camel_case_fields_and_defaults() {
        let l = limits(json!({"enabled": true, "rules": [
            {"id": "6fb25042", "limit": 10, "limitType": "cost", "window": 3600},
            {"id": "r2", "enabled": false, "limit": 0.5, "limitType": "cost", "window": 60.0,
             "technique": "fixed", "unknown": {"x": 1}},
        ]}));
        assert!(l.enabled);
        let first = &l.rules[0];
        assert_eq!(first.id, "6fb25042");
        assert!(first.enabled, "enabled defaults to true");
        assert_eq!(first.limit_usd, 10.0);
        assert_eq!(first.window, Duration::from_secs(3600));
        assert_eq!(first.technique, SpendTechnique::Sliding, "the default");
        assert_eq!(
            (first.model.as_ref(), first.provider.as_ref()),
            (None, None)
        );
        assert!(first.metadata.is_empty());
        let second = &l.rules[1];
        assert!(!second.enabled);
        assert_eq!(second.limit_usd, 0.5);
        assert_eq!(second.window, Duration::from_secs(60));
        assert_eq!(second.technique, SpendTechnique::Fixed);
    }

    #[test]
    fn the_object_is_off_and_empty_unless_it_says_otherwise() {
        let l = limits(json!({}));
        assert!(!l.enabled);
        assert!(l.rules.is_empty());
        assert!(!l.is_active());
        let nulls = limits(json!({"enabled": null, "rules": null}));
        assert_eq!(nulls, l);
    }

    #[test]
    fn dimensions_read_filters_and_partitions() {
        let l = limits(
            json!({"enabled": true, "rules": [{"limit": 1, "limitType": "cost", "window": 60,
                "model": {"mode": "filter", "values": ["gpt-4o", "gpt-4o-mini"]},
                "provider": {"mode": "filter", "values": ["openai"]},
                "metadata": {"user": {"mode": "partition"}, "team": {"mode": "filter", "values": ["eng", 7, true, null]}}
            }]}),
        );
        let r = &l.rules[0];
        assert_eq!(r.model, Some(vec!["gpt-4o".into(), "gpt-4o-mini".into()]));
        assert_eq!(r.provider, Some(vec!["openai".into()]));
        assert_eq!(
            r.metadata,
            vec![
                (
                    "team".into(),
                    MetadataDimension::Filter(vec!["eng".into(), "7".into(), "true".into()])
                ),
                ("user".into(), MetadataDimension::Partition),
            ],
            "sorted by key; values as text, a null dropped"
        );
    }

    #[test]
    fn what_a_node_could_not_enforce_is_refused() {
        let cases = [
            json!([]),
            json!({"rules": {}}),
            json!({"rules": [1]}),
            json!({"rules": [{"limitType": "cost", "window": 60}]}),
            json!({"rules": [{"limit": -1, "limitType": "cost", "window": 60}]}),
            json!({"rules": [{"limit": 1, "limitType": "tokens", "window": 60}]}),
            json!({"rules": [{"limit": 1, "limitType": "cost"}]}),
            json!({"rules": [{"limit": 1, "limitType": "cost", "window": 1.5}]}),
            json!({"rules": [{"limit": 1, "limitType": "cost", "window": 60, "technique": "calendar"}]}),
            json!({"rules": [{"limit": 1, "limitType": "cost", "window": 60, "model": {"mode": "partition"}}]}),
            json!({"rules": [{"limit": 1, "limitType": "cost", "window": 60, "model": {"mode": "filter", "values": [1]}}]}),
            json!({"rules": [{"limit": 1, "limitType": "cost", "window": 60, "metadata": {"k": {"mode": "x"}}}]}),
            json!({"rules": [{"limit": 1, "limitType": "cost", "window": 60, "metadata": {"k": {"mode": "filter"}}}]}),
            json!({"enabled": "yes"}),
        ];
        for case in cases {
            assert!(SpendLimits::from_settings(&case).is_err(), "{case}");
        }
    }

    #[test]
    fn a_rule_without_an_id_gets_one_from_what_it_counts() {
        let rule = json!({"limit": 10, "limitType": "cost", "window": 3600,
            "model": {"mode": "filter", "values": ["gpt-4o"]}});
        let id = limits(json!({"rules": [rule.clone()]})).rules[0].id.clone();
        // Pinned: a change to how ids are derived restarts every such rule's count on upgrade.
        assert_eq!(id, "60b37fc0");

        // The same content in another key order, with the default written out, another limit, paused or with a
        // field this build does not know: the same id, so every node agrees and raising a budget keeps what was
        // spent.
        let reordered = json!({"model": {"values": ["gpt-4o"], "mode": "filter"}, "window": 3600,
            "limitType": "cost", "limit": 20, "enabled": false, "technique": "sliding", "future": 1});
        assert_eq!(limits(json!({"rules": [reordered]})).rules[0].id, id);

        // Counting something else is another rule.
        let mut other = rule.clone();
        other["window"] = json!(60);
        assert_ne!(limits(json!({"rules": [other]})).rules[0].id, id);

        // Two rules that count the same thing, and an explicit id that takes the derived one, stay apart.
        let l = limits(json!({"rules": [rule.clone(), rule.clone(),
            {"id": id.clone(), "limit": 1, "limitType": "cost", "window": 1}]}));
        let ids: HashSet<_> = l.rules.iter().map(|r| r.id.clone()).collect();
        assert_eq!(ids.len(), 3, "{ids:?}");
        assert_eq!(l.rules[2].id, id, "an explicit id is kept");
    }

    #[test]
    fn filters_select_requests_by_provider_model_and_metadata() {
        let l = limits(json!({"enabled": true, "rules": [
            {"id": "all", "limit": 1, "limitType": "cost", "window": 60},
            {"id": "openai", "limit": 1, "limitType": "cost", "window": 60,
             "provider": {"mode": "filter", "values": ["openai"]}},
            {"id": "gpt", "limit": 1, "limitType": "cost", "window": 60,
             "model": {"mode": "filter", "values": ["gpt-4o"]}},
            {"id": "eng", "limit": 1, "limitType": "cost", "window": 60,
             "metadata": {"team": {"mode": "filter", "values": ["eng", 7]}}},
        ]}));
        let cases: [(&str, Option<&str>, Value, &[&str]); 7] = [
            (
                "openai",
                Some("gpt-4o"),
                json!({}),
                &["all", "openai", "gpt"],
            ),
            ("anthropic", Some("gpt-4o"), json!({}), &["all", "gpt"]),
            ("openai", None, json!({}), &["all", "openai"]),
            ("openai", Some("GPT-4O"), json!({}), &["all", "openai"]),
            ("groq", None, json!({"team": "eng"}), &["all", "eng"]),
            ("groq", None, json!({"team": 7}), &["all", "eng"]),
            ("groq", None, json!({"team": "ops"}), &["all"]),
        ];
        for (provider, model, m, want) in cases {
            assert_eq!(
                buckets(&l, provider, model, m.clone()),
                want,
                "{provider} {model:?} {m}"
            );
        }
    }

    #[test]
    fn partitions_give_each_value_its_own_bucket() {
        let l = limits(
            json!({"enabled": true, "rules": [{"id": "per-user", "limit": 1, "limitType": "cost",
            "window": 60, "metadata": {"user": {"mode": "partition"}, "app": {"mode": "partition"}}}]}),
        );
        let cases: [(Value, Option<&str>); 6] = [
            (
                json!({"user": "ann", "app": "x"}),
                Some("per-user:app=x:user=ann"),
            ),
            (
                json!({"user": "bob", "app": "x"}),
                Some("per-user:app=x:user=bob"),
            ),
            (
                json!({"user": 1, "app": true}),
                Some("per-user:app=true:user=1"),
            ),
            (
                json!({"user": "a:b=c", "app": "x"}),
                Some("per-user:app=x:user=a%3Ab%3Dc"),
            ),
            (json!({"user": "ann"}), None),
            (json!({"user": {"nested": 1}, "app": "x"}), None),
        ];
        for (m, want) in cases {
            let got = buckets(&l, "openai", None, m.clone()).pop();
            assert_eq!(got.as_deref(), want, "{m}");
        }
    }

    #[test]
    fn bucket_names_cannot_collide_through_separators_in_ids_or_values() {
        let l = limits(json!({"enabled": true, "rules": [
            {"id": "a:k=v", "limit": 1, "limitType": "cost", "window": 60},
            {"id": "a", "limit": 1, "limitType": "cost", "window": 60,
             "metadata": {"k": {"mode": "partition"}}},
        ]}));
        let got = buckets(&l, "p", None, json!({"k": "v"}));
        assert_eq!(got.len(), 2);
        assert_ne!(got[0], got[1]);

        let long = "x".repeat(1000);
        let hashed = bucket_part(&long);
        assert!(hashed.starts_with('#') && hashed.len() == 33, "{hashed}");
        assert_ne!(bucket_part("#"), bucket_part("%23"));
        assert_eq!(bucket_part("#"), "%23");
    }

    #[test]
    fn disabled_rules_and_a_disabled_object_apply_to_nothing() {
        let rules = json!([
            {"id": "on", "limit": 1, "limitType": "cost", "window": 60},
            {"id": "off", "enabled": false, "limit": 1, "limitType": "cost", "window": 60},
        ]);
        let on = limits(json!({"enabled": true, "rules": rules.clone()}));
        assert!(on.is_active());
        assert_eq!(buckets(&on, "openai", None, json!({})), ["on"]);
        let off = limits(json!({"enabled": false, "rules": rules}));
        assert!(!off.is_active());
        assert!(buckets(&off, "openai", None, json!({})).is_empty());
        let all_paused = limits(json!({"enabled": true, "rules": [
            {"id": "off", "enabled": false, "limit": 1, "limitType": "cost", "window": 60}]}));
        assert!(!all_paused.is_active());
    }

    #[test]
    fn refusals_are_worded_as_cloudflare_words_them() {
        let l = limits(json!({"rules": [
            {"id": "6fb25042", "limit": 10, "limitType": "cost", "window": 3600},
            {"id": "cheap", "limit": 0.5, "limitType": "cost", "window": 60, "technique": "fixed"},
        ]}));
        assert_eq!(
            l.rules[0].exceeded_message("openai", Some("gpt-4o-mini")),
            "Spend limit exceeded: rule '6fb25042' (cost limit 10 per 3600s, sliding) for openai gpt-4o-mini"
        );
        assert_eq!(
            l.rules[1].exceeded_message("workers-ai", None),
            "Spend limit exceeded: rule 'cheap' (cost limit 0.5 per 60s, fixed) for workers-ai"
        );
    }
}
