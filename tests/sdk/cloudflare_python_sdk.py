"""Drives Gatehouse with Cloudflare's official Python SDK, unchanged, through base_url.

Usage: python cloudflare_python_sdk.py BASE_URL TOKEN ACCOUNT_ID
Exits non-zero (with the failing step) on any difference from what the SDK expects.
"""
import sys

import cloudflare
from cloudflare import Cloudflare


def main() -> None:
    base_url, token, account = sys.argv[1], sys.argv[2], sys.argv[3]
    cf = Cloudflare(api_token=token, base_url=base_url, max_retries=0)
    gw = cf.ai_gateway

    created = gw.create(
        account_id=account,
        id="sdk-gateway",
        cache_invalidate_on_update=True,
        cache_ttl=0,
        collect_logs=True,
        rate_limiting_interval=0,
        rate_limiting_limit=0,
    )
    assert created.id == "sdk-gateway", created
    assert created.collect_logs is True, created

    for i in range(24):
        gw.create(account_id=account, id=f"sdk-page-{i:02d}", cache_invalidate_on_update=False, cache_ttl=60,
                  collect_logs=False, rate_limiting_interval=0, rate_limiting_limit=0)

    # The auto-paginator walks page = 1, 2, ... until a page comes back empty.
    ids = [g.id for g in gw.list(account_id=account, per_page=10)]
    assert len(ids) == 25 and len(set(ids)) == 25, ids
    searched = [g.id for g in gw.list(account_id=account, search="sdk-page-1")]
    assert sorted(searched) == [f"sdk-page-1{i}" for i in range(10)], searched

    fetched = gw.get("sdk-gateway", account_id=account)
    assert fetched.id == "sdk-gateway" and fetched.cache_ttl == 0, fetched

    updated = gw.update(
        "sdk-gateway",
        account_id=account,
        cache_invalidate_on_update=False,
        cache_ttl=120,
        collect_logs=False,
        rate_limiting_interval=60,
        rate_limiting_limit=10,
        rate_limiting_technique="sliding",
        retry_max_attempts=3,
        retry_backoff="exponential",
        authentication=True,
    )
    assert updated.cache_ttl == 120 and updated.rate_limiting_technique == "sliding", updated
    assert updated.authentication is True, updated

    url = gw.urls.get("openai", account_id=account, gateway_id="sdk-gateway")
    assert url.endswith(f"/v1/{account}/sdk-gateway/openai"), url

    deleted = gw.delete("sdk-gateway", account_id=account)
    assert deleted.id == "sdk-gateway", deleted

    try:
        gw.get("sdk-gateway", account_id=account)
        raise AssertionError("a deleted gateway must be gone")
    except cloudflare.NotFoundError:
        pass
    try:
        gw.create(account_id=account, id="sdk-page-00", cache_invalidate_on_update=True, cache_ttl=0,
                  collect_logs=True, rate_limiting_interval=0, rate_limiting_limit=0)
        raise AssertionError("a duplicate id must be refused")
    except cloudflare.BadRequestError as e:
        assert "5403" in str(e.body) or "already exists" in str(e), e
    try:
        Cloudflare(api_token="not-a-token", base_url=base_url, max_retries=0).ai_gateway.list(account_id=account)
        raise AssertionError("a bad token must be refused")
    except cloudflare.AuthenticationError:
        pass
    print("cloudflare python sdk: ok")


if __name__ == "__main__":
    main()
