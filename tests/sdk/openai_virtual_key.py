"""A virtual key used as OpenAI's Python SDK `api_key` on the gateway's /compat endpoint, unchanged.

Usage: python openai_virtual_key.py INFERENCE_BASE ACCOUNT GATEWAY KEY
The key must allow `openai/gpt-4o-mini` and not `anthropic/*`; the gateway routes openai to a mock provider and
holds a stored OpenAI key. Exits non-zero (with the failing step) on any difference from what the SDK expects.
"""
import sys

import openai


def main() -> None:
    base, account, gateway, key = sys.argv[1:5]
    client = openai.OpenAI(api_key=key, base_url=f"{base}/v1/{account}/{gateway}/compat", max_retries=0)

    completion = client.chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Say hello"}]
    )
    assert completion.choices[0].message.content, completion

    text = ""
    for chunk in client.chat.completions.create(
        model="openai/gpt-4o-mini",
        messages=[{"role": "user", "content": "Count"}],
        stream=True,
        stream_options={"include_usage": True},
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
    assert text, "the stream carried text"

    ids = [m.id for m in client.models.list()]
    assert ids == ["openai/gpt-4o-mini"], ids

    try:
        client.chat.completions.create(
            model="anthropic/claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}]
        )
        raise AssertionError("a model the key may not use was served")
    except openai.PermissionDeniedError as e:
        assert e.status_code == 403, e
        assert "anthropic/claude-sonnet-4-5" in str(e), e

    bad = openai.OpenAI(api_key="ghk_not-a-key", base_url=client.base_url, max_retries=0)
    try:
        bad.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        raise AssertionError("an unknown key was served")
    except openai.AuthenticationError as e:
        assert e.status_code == 401, e

    print("openai virtual key: ok")


if __name__ == "__main__":
    main()
