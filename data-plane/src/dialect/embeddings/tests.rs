use base64::Engine as _;
use serde_json::{Value, json};

use super::*;

fn parsed(body: Value) -> Result<EmbeddingRequest, TranslateError> {
    parse(body.to_string().as_bytes())
}

fn param_of(e: &TranslateError) -> Option<&str> {
    match e {
        TranslateError::Invalid { param, .. } | TranslateError::Unsupported { param, .. } => {
            param.as_deref()
        }
        TranslateError::BadResponse(_) => None,
    }
}

#[test]
fn every_input_shape_parses() {
    let one = parsed(json!({"model": "cohere/embed-v4.0", "input": "hi"})).unwrap();
    assert_eq!(one.model, "cohere/embed-v4.0");
    assert_eq!(one.input, Input::Texts(vec!["hi".to_owned()]));
    assert_eq!(one.encoding_format, EncodingFormat::Float);
    assert_eq!(
        (one.dimensions, one.input_type, one.user),
        (None, None, None)
    );

    let many = parsed(json!({"model": "m", "input": ["a", "b"], "dimensions": 256,
        "encoding_format": "base64", "user": "u-1", "input_type": "search_query"}))
    .unwrap();
    assert_eq!(
        many.input,
        Input::Texts(vec!["a".to_owned(), "b".to_owned()])
    );
    assert_eq!(many.dimensions, Some(256));
    assert_eq!(many.encoding_format, EncodingFormat::Base64);
    assert_eq!(many.input_type, Some(InputType::SearchQuery));
    assert_eq!(many.user.as_deref(), Some("u-1"));

    assert_eq!(
        parsed(json!({"model": "m", "input": [1, 2, 3]}))
            .unwrap()
            .input,
        Input::Tokens(vec![vec![1, 2, 3]])
    );
    assert_eq!(
        parsed(json!({"model": "m", "input": [[1, 2], [3]]}))
            .unwrap()
            .input,
        Input::Tokens(vec![vec![1, 2], vec![3]])
    );
    // `null` is absent, as OpenAI's SDKs send unset fields.
    let nulls = parsed(
        json!({"model": "m", "input": "x", "dimensions": null, "encoding_format": null, "user": null}),
    )
    .unwrap();
    assert_eq!(nulls.encoding_format, EncodingFormat::Float);
}

#[test]
fn bad_bodies_name_the_offending_parameter() {
    let cases = [
        (json!({"input": "x"}), Some("model")),
        (json!({"model": 5, "input": "x"}), Some("model")),
        (json!({"model": "m"}), Some("input")),
        (json!({"model": "m", "input": ""}), Some("input")),
        (json!({"model": "m", "input": []}), Some("input")),
        (json!({"model": "m", "input": ["a", ""]}), Some("input")),
        (json!({"model": "m", "input": ["a", 1]}), Some("input")),
        (json!({"model": "m", "input": [[1], []]}), Some("input")),
        (json!({"model": "m", "input": [-1]}), Some("input")),
        (json!({"model": "m", "input": [1.5]}), Some("input")),
        (json!({"model": "m", "input": {"text": "x"}}), Some("input")),
        (
            json!({"model": "m", "input": "x", "dimensions": 0}),
            Some("dimensions"),
        ),
        (
            json!({"model": "m", "input": "x", "dimensions": "8"}),
            Some("dimensions"),
        ),
        (
            json!({"model": "m", "input": "x", "encoding_format": "int8"}),
            Some("encoding_format"),
        ),
        (
            json!({"model": "m", "input": "x", "input_type": "query"}),
            Some("input_type"),
        ),
        (json!({"model": "m", "input": "x", "user": 7}), Some("user")),
        (json!(["m"]), None),
    ];
    for (body, param) in cases {
        let e = parsed(body.clone()).unwrap_err();
        assert!(matches!(e, TranslateError::Invalid { .. }), "{body}: {e:?}");
        assert_eq!(param_of(&e), param, "{body}");
        assert_eq!(e.to_provider_error().status, 400);
    }
    assert!(parse(b"{not json").is_err());
    let too_many = vec!["x"; MAX_INPUTS + 1];
    assert_eq!(
        param_of(&parsed(json!({"model": "m", "input": too_many})).unwrap_err()),
        Some("input")
    );
}

#[test]
fn token_input_is_refused_for_every_translated_provider() {
    let req = parsed(json!({"model": "m", "input": [1, 2]})).unwrap();
    let e = req.texts("cohere").unwrap_err();
    assert!(matches!(e, TranslateError::Unsupported { .. }));
    assert_eq!(param_of(&e), Some("input"));
    assert_eq!(
        e.to_provider_error().code.as_deref(),
        Some("unsupported_parameter")
    );
}

#[test]
fn codecs_exist_for_the_translated_embedding_providers() {
    for slug in [
        "google-ai-studio",
        "google-vertex-ai",
        "cohere",
        "aws-bedrock",
        "workers-ai",
    ] {
        assert!(codec(slug).is_some(), "{slug}");
    }
    for slug in ["anthropic", "openai", "mistral"] {
        assert!(codec(slug).is_none(), "{slug}");
    }
}

#[test]
fn the_answer_is_openai_s_list() {
    let resp = EmbeddingResponse {
        embeddings: vec![vec![0.5, -0.25], vec![1.0, 0.0]],
        prompt_tokens: Some(7),
        model: None,
    };
    let out: Value =
        serde_json::from_slice(&encode_response(&resp, "embed-v4.0", EncodingFormat::Float))
            .unwrap();
    assert_eq!(
        out,
        json!({"object": "list", "data": [
            {"object": "embedding", "index": 0, "embedding": [0.5, -0.25]},
            {"object": "embedding", "index": 1, "embedding": [1.0, 0.0]}
        ], "model": "embed-v4.0", "usage": {"prompt_tokens": 7, "total_tokens": 7}})
    );
    // Without a count from the provider the usage reads 0; a model the provider names wins.
    let unreported = EmbeddingResponse {
        prompt_tokens: None,
        model: Some("bge-base".to_owned()),
        ..resp
    };
    let out: Value =
        serde_json::from_slice(&encode_response(&unreported, "x", EncodingFormat::Float)).unwrap();
    assert_eq!(out["usage"], json!({"prompt_tokens": 0, "total_tokens": 0}));
    assert_eq!(out["model"], "bge-base");
}

#[test]
fn base64_is_little_endian_f32() {
    let vector = [0.5_f32, -0.25, 1.0e-3, 3.0];
    let resp = EmbeddingResponse {
        embeddings: vec![vector.to_vec()],
        prompt_tokens: Some(1),
        model: None,
    };
    let out: Value =
        serde_json::from_slice(&encode_response(&resp, "m", EncodingFormat::Base64)).unwrap();
    let text = out["data"][0]["embedding"].as_str().unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap();
    let back: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(back, vector);
    // 0.5f32 is 0x3f000000: bytes 00 00 00 3f.
    assert_eq!(base64_f32(&[0.5]), "AAAAPw==");
}

#[test]
fn floats_survive_the_f32_round_trip() {
    let body = json!({"embeddings": {"float": [[0.012345679, -0.9999]]}});
    let decoded = CohereEmbeddings
        .decode(body.to_string().as_bytes())
        .unwrap();
    let out: Value =
        serde_json::from_slice(&encode_response(&decoded, "m", EncodingFormat::Float)).unwrap();
    assert_eq!(out["data"][0]["embedding"], json!([0.012345679, -0.9999]));
}
