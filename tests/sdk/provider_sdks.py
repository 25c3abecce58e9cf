"""Drives the gateway with OpenAI's and Anthropic's official Python SDKs, unchanged, through base_url.

Usage: python provider_sdks.py INFERENCE_BASE ACCOUNT GATEWAY
The gateway must route openai and anthropic to a mock provider (tests/mock-providers) that accepts any key.
Exits non-zero (with the failing step) on any difference from what the SDKs expect.
"""
import sys

import anthropic
import openai


def main() -> None:
    base, account, gateway = sys.argv[1], sys.argv[2], sys.argv[3]
    root = f"{base}/v1/{account}/{gateway}"

    oa = openai.OpenAI(api_key="sk-test", base_url=f"{root}/openai", max_retries=0)
    completion = oa.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello"}]
    )
    assert completion.choices[0].message.content, completion
    assert completion.usage and completion.usage.total_tokens > 0, completion

    chunks = list(
        oa.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Say hello"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text, chunks
    assert any(c.usage for c in chunks), "the final usage chunk arrives through the gateway"

    ant = anthropic.Anthropic(api_key="sk-ant-test", base_url=f"{root}/anthropic", max_retries=0)
    message = ant.messages.create(
        model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "Say hello"}]
    )
    assert message.content and message.content[0].text, message
    with ant.messages.stream(
        model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "Say hello"}]
    ) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed and final.usage.output_tokens > 0, final

    try:
        openai.OpenAI(api_key="sk-test", base_url=f"{base}/v1/{account}/no-such-gateway/openai", max_retries=0).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        )
        raise AssertionError("an unknown gateway must be refused")
    except openai.BadRequestError as e:
        assert "2001" in str(e.body) or "Gateway" in str(e), e
    print("provider sdks: ok")


if __name__ == "__main__":
    main()
