//! `GET /v1/{account}/{gateway}/compat/models`, answered by the gateway from its catalog.

/// `GET /compat/models`: the gateway's catalog as OpenAI's model list (`id` the plain name clients send,
/// `owned_by` the provider). A gateway without a catalog lists nothing: it serves any `{provider}/{model}`, which
/// no list can enumerate. A `regional_only` gateway lists only its regional models.
///
/// `allowed` is the caller's virtual key's model patterns (issue 14): the list keeps only the catalog models whose
/// `provider/model` target they allow, and adds each exact (glob-free) pattern the catalog does not hold, so a
/// key's user sees what it may call.
pub(crate) fn models_list(
    settings: &gatehouse_shared::gateway::GatewaySettings,
    allowed: &[String],
) -> Vec<u8> {
    use gatehouse_shared::gateway::{CatalogModelLocation, CatalogModelType};

    let regional_only = settings.regional_only.unwrap_or(false);
    let catalog = settings
        .models
        .iter()
        .flatten()
        .filter(|m| !(regional_only && m.location == CatalogModelLocation::Global));
    let mut data: Vec<serde_json::Value> = catalog
        .clone()
        .filter(|m| gatehouse_shared::access::model_allowed(allowed, &m.target))
        .map(|m| {
            let owner = m.target.split_once('/').map_or("", |(p, _)| p);
            serde_json::json!({
                "id": m.name,
                "object": "model",
                "created": 0,
                "owned_by": owner,
                "type": match m.model_type {
                    CatalogModelType::Chat => "chat",
                    CatalogModelType::Embedding => "embedding",
                },
            })
        })
        .collect();
    for exact in allowed.iter().filter(|p| !p.contains('*')) {
        if catalog
            .clone()
            .any(|m| &m.target == exact || &m.name == exact)
        {
            continue;
        }
        let owner = exact.split_once('/').map_or("", |(p, _)| p);
        data.push(serde_json::json!({
            "id": exact,
            "object": "model",
            "created": 0,
            "owned_by": owner,
        }));
    }
    serde_json::to_vec(&serde_json::json!({"object": "list", "data": data})).unwrap_or_default()
}
