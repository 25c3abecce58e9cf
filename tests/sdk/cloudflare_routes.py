"""Drives Gatehouse's dynamic routes with Cloudflare's official Python SDK, unchanged, through base_url.

Usage: python cloudflare_routes.py BASE_URL TOKEN ACCOUNT_ID
Covers client.ai_gateway.dynamic_routing: create, list, get, update, create_version, list_versions, get_version,
create_deployment, list_deployments and delete, with the envelopes each method expects (`result`, `data`, top-level
`route`). Exits non-zero (with the failing step) on any difference from what the SDK expects.
"""
import json
import sys

import cloudflare
from cloudflare import Cloudflare


def graph(provider: str, model: str) -> list:
    return [
        {"id": "s", "type": "start", "outputs": {"next": {"elementId": "m1"}}},
        {
            "id": "m1",
            "type": "model",
            "properties": {"provider": provider, "model": model, "retries": 1, "timeout": 5000},
            "outputs": {"success": {"elementId": "e"}, "fallback": {"elementId": "e"}},
        },
        {"id": "e", "type": "end", "outputs": {}},
    ]


def model_of(elements) -> str:
    return [e for e in elements if e.type == "model"][0].properties.model


def main() -> None:
    base_url, token, account = sys.argv[1], sys.argv[2], sys.argv[3]
    cf = Cloudflare(api_token=token, base_url=base_url, max_retries=0)
    cf.ai_gateway.create(account_id=account, id="sdk-routes", cache_invalidate_on_update=True, cache_ttl=0,
                         collect_logs=True, rate_limiting_interval=0, rate_limiting_limit=0)
    dr = cf.ai_gateway.dynamic_routing
    ids = {"account_id": account, "gateway_id": "sdk-routes"}

    # create: `result` unwrapped; the first version is deployed.
    created = dr.create("sdk-routes", account_id=account, name="support", elements=graph("openai", "gpt-4o-mini"))
    assert created.name == "support" and created.gateway_id == "sdk-routes", created
    assert created.version.active == "true" and created.version.is_valid is True, created
    assert created.deployment.version_id == created.version.version_id, created
    assert model_of(created.elements) == "gpt-4o-mini", created
    assert created.elements[0].outputs.next.element_id == "m1", created
    assert json.loads(created.version.data) == graph("openai", "gpt-4o-mini"), created.version.data
    route_id, v1 = created.id, created.version.version_id
    dr.create("sdk-routes", account_id=account, name="other", elements=graph("anthropic", "claude-3-5-haiku"))

    # list: the raw body, `data.routes`.
    listed = dr.list("sdk-routes", account_id=account, per_page=1)
    assert listed.success is True and len(listed.data.routes) == 1 and listed.data.per_page == 1, listed
    both = dr.list("sdk-routes", account_id=account)
    assert sorted(r.name for r in both.data.routes) == ["other", "support"], both
    past = dr.list("sdk-routes", account_id=account, page=9, per_page=5)
    assert past.data.routes == [], past

    fetched = dr.get(route_id, **ids)
    assert fetched.id == route_id and fetched.version.version_id == v1, fetched

    # update: the raw body, top-level `route`.
    updated = dr.update(route_id, name="helpdesk", **ids)
    assert updated.success is True and updated.route.name == "helpdesk", updated
    assert updated.route.version.version_id == v1, updated

    # create_version: a draft; the route still serves version 1.
    draft = dr.create_version(route_id, elements=graph("openai", "gpt-4o"), **ids)
    assert draft.id == route_id and model_of(draft.elements) == "gpt-4o", draft
    v2 = draft.version_id  # an extra field the SDK keeps
    assert draft.active == "false", draft
    assert model_of(dr.get(route_id, **ids).elements) == "gpt-4o-mini"

    versions = dr.list_versions(route_id, **ids)
    assert versions.success is True, versions
    assert [(v.version_id, v.active) for v in versions.data.versions] == [(v2, "false"), (v1, "true")], versions
    assert all(v.is_valid is True and isinstance(v.data, str) for v in versions.data.versions), versions

    got = dr.get_version(v2, id=route_id, **ids)
    assert got.version_id == v2 and got.active == "false" and json.loads(got.data) == graph("openai", "gpt-4o"), got

    # create_deployment: deploy version 2, then roll back to version 1.
    deployed = dr.create_deployment(route_id, version_id=v2, **ids)
    assert deployed.id == route_id and model_of(deployed.elements) == "gpt-4o", deployed
    assert model_of(dr.get(route_id, **ids).elements) == "gpt-4o"
    dr.create_deployment(route_id, version_id=v1, **ids)
    assert dr.get(route_id, **ids).version.version_id == v1

    deployments = dr.list_deployments(route_id, **ids)
    assert deployments.success is True, deployments
    assert [d.version_id for d in deployments.data.deployments] == [v1, v2, v1], deployments

    # Errors map to the SDK's exceptions.
    try:
        dr.create("sdk-routes", account_id=account, name="other", elements=graph("openai", "gpt-4o"))
        raise AssertionError("a duplicate name must be refused")
    except cloudflare.BadRequestError as e:
        assert "already exists" in str(e), e
    try:
        dr.create("sdk-routes", account_id=account, name="bad", elements=graph("nope", "m"))
        raise AssertionError("an unknown provider must be refused")
    except cloudflare.BadRequestError as e:
        assert "element 'm1': unknown provider 'nope'" in str(e), e

    deleted = dr.delete(route_id, **ids)
    assert deleted.id == route_id and deleted.name == "helpdesk", deleted
    try:
        dr.get(route_id, **ids)
        raise AssertionError("a deleted route must be gone")
    except cloudflare.NotFoundError:
        pass
    print("cloudflare routes sdk: ok")


if __name__ == "__main__":
    main()
