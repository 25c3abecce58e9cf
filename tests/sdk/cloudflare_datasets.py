"""Drives Gatehouse's datasets, evaluation types and evaluations with Cloudflare's official Python SDK, unchanged,
through base_url.

Usage: python cloudflare_datasets.py BASE_URL TOKEN ACCOUNT_ID
Covers client.ai_gateway.evaluation_types.list, datasets (create, list with auto-pagination, get, update, delete)
and evaluations (create, list with auto-pagination, get polled until processed, delete), and the SDK's exceptions
for a bad body and a missing object. Exits non-zero (with the failing step) on any difference from what the SDK
expects.
"""
import sys
import time

import cloudflare
from cloudflare import Cloudflare

GATEWAY = "sdk-datasets"


def main() -> None:
    base_url, token, account = sys.argv[1], sys.argv[2], sys.argv[3]
    cf = Cloudflare(api_token=token, base_url=base_url, max_retries=0)
    cf.ai_gateway.create(account_id=account, id=GATEWAY, cache_invalidate_on_update=True, cache_ttl=0,
                         collect_logs=True, rate_limiting_interval=0, rate_limiting_limit=0)
    ai = cf.ai_gateway
    ids = {"account_id": account, "gateway_id": GATEWAY}

    # Evaluation types: auto-pagination over pages of 5 reads them all, then stops at the empty page.
    types = [t.id for t in ai.evaluation_types.list(account_id=account, per_page=5)]
    assert types == ["cost", "speed", "performance"], types
    first = ai.evaluation_types.list(account_id=account).result[0]
    assert first.name and first.type == first.id and first.enable is True, first

    # Datasets: `result` unwrapped, datetimes parsed, filters typed.
    created = ai.datasets.create(GATEWAY, account_id=account, name="gpt", enable=True,
                                 filters=[{"key": "model", "operator": "eq", "value": ["gpt-4o"]},
                                          {"key": "cost", "operator": "lt", "value": [0.5]}])
    assert created.name == "gpt" and created.gateway_id == GATEWAY and created.enable is True, created
    assert created.filters[0].key == "model" and created.filters[0].value == ["gpt-4o"], created
    assert created.created_at.year >= 2024, created
    names = ["gpt"]
    for i in range(4):
        ai.datasets.create(GATEWAY, account_id=account, name=f"d{i}", enable=i % 2 == 0,
                           filters=[{"key": "duration", "operator": "gt", "value": [i * 100]}])
        names.append(f"d{i}")
    listed = [d.name for d in ai.datasets.list(GATEWAY, account_id=account, per_page=2)]
    assert listed == names, listed
    enabled = [d.name for d in ai.datasets.list(GATEWAY, account_id=account, enable=False)]
    assert enabled == ["d1", "d3"], enabled
    got = ai.datasets.get(created.id, **ids)
    # Each method has its own response classes: compare the filters' fields.
    assert got.id == created.id, got
    assert [f.model_dump() for f in got.filters] == [f.model_dump() for f in created.filters], got
    updated = ai.datasets.update(created.id, name="gpt-4o only", enable=True,
                                 filters=[{"key": "model", "operator": "contains", "value": ["gpt-4o"]}], **ids)
    assert updated.name == "gpt-4o only" and updated.filters[0].operator == "contains", updated
    try:
        ai.datasets.create(GATEWAY, account_id=account, name="bad", enable=True,
                           filters=[{"key": "cost", "operator": "contains", "value": [1]}])
        raise AssertionError("contains on cost must be refused")
    except cloudflare.BadRequestError as e:
        assert "filters" in str(e) and "operator" in str(e), e

    # Evaluations: created unprocessed (or already done), then polled until processed.
    evaluation = ai.evaluations.create(GATEWAY, account_id=account, name="first",
                                       dataset_ids=[created.id], evaluation_type_ids=["cost", "speed", "performance"])
    assert evaluation.name == "first" and [d.id for d in evaluation.datasets] == [created.id], evaluation
    assert [r.evaluation_type_id for r in evaluation.results] == ["cost", "speed", "performance"], evaluation
    deadline = time.time() + 20
    while True:
        current = ai.evaluations.get(evaluation.id, **ids)
        if current.processed:
            break
        assert time.time() < deadline, f"evaluation not processed in time: {current}"
        time.sleep(0.2)
    assert all(r.status == 1 and r.status_description.startswith("completed") for r in current.results), current
    assert all(isinstance(r.result, str) and float(r.result) >= 0 for r in current.results), current
    assert current.total_logs == 0, current
    second = ai.evaluations.create(GATEWAY, account_id=account, name="second",
                                   dataset_ids=[created.id, ai.datasets.list(GATEWAY, account_id=account).result[1].id],
                                   evaluation_type_ids=["speed"])
    every = [e.name for e in ai.evaluations.list(GATEWAY, account_id=account, per_page=1)]
    assert every == ["first", "second"], every
    done = [e.name for e in ai.evaluations.list(GATEWAY, account_id=account, processed=True)]
    assert "first" in done, done
    try:
        ai.evaluations.create(GATEWAY, account_id=account, name="bad", dataset_ids=[created.id],
                              evaluation_type_ids=["quality"])
        raise AssertionError("an unknown evaluator must be refused")
    except cloudflare.BadRequestError as e:
        assert "evaluation_type_ids" in str(e), e

    deleted = ai.evaluations.delete(second.id, **ids)
    assert deleted.id == second.id and deleted.name == "second", deleted
    try:
        ai.evaluations.get(second.id, **ids)
        raise AssertionError("a deleted evaluation must be gone")
    except cloudflare.NotFoundError:
        pass
    gone = ai.datasets.delete(created.id, **ids)
    assert gone.id == created.id and gone.name == "gpt-4o only", gone
    try:
        ai.datasets.get(created.id, **ids)
        raise AssertionError("a deleted dataset must be gone")
    except cloudflare.NotFoundError:
        pass
    print("cloudflare datasets sdk: ok")


if __name__ == "__main__":
    main()
