"""Drives the gateway's OpenAI-compatible endpoint (/compat) with OpenAI's official Python SDK, unchanged.

Usage: python openai_compat.py INFERENCE_BASE ACCOUNT GATEWAY
The gateway must route openai, anthropic, google-ai-studio and cohere to a mock provider (tests/mock-providers).
Exits non-zero (with the failing step) on any difference from what the SDK expects.
"""
import json
import sys

import openai

MODELS = [
    "openai/gpt-4o-mini",
    "anthropic/claude-sonnet-4-5",
    "google-ai-studio/gemini-2.5-flash",
    "cohere/command-a-03-2025",
]

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
    },
}


def main() -> None:
    base, account, gateway = sys.argv[1], sys.argv[2], sys.argv[3]
    client = openai.OpenAI(api_key="sk-test", base_url=f"{base}/v1/{account}/{gateway}/compat", max_retries=0)

    for model in MODELS:
        step = f"{model}: chat"
        completion = client.chat.completions.create(
            model=model, messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]
        )
        assert completion.choices[0].message.content, (step, completion)
        assert completion.choices[0].finish_reason == "stop", (step, completion)
        assert completion.usage and completion.usage.total_tokens > 0, (step, completion)

        step = f"{model}: stream"
        chunks = list(
            client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": "Say hello"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text, (step, chunks)
        assert any(c.usage and c.usage.total_tokens > 0 for c in chunks), (step, chunks)
        assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks), (step, chunks)

        step = f"{model}: tools"
        first = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Weather in Paris?"}],
            tools=[WEATHER],
            extra_headers={"x-mock-scenario": "tool_call"},
        )
        call = first.choices[0].message.tool_calls[0]
        assert first.choices[0].finish_reason == "tool_calls", (step, first)
        assert call.function.name == "get_weather", (step, first)
        assert json.loads(call.function.arguments)["location"] == "Paris", (step, first)
        second = client.chat.completions.create(
            model=model,
            messages=[
                {"role": "user", "content": "Weather in Paris?"},
                first.choices[0].message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": call.id, "content": "18 degrees"},
            ],
            tools=[WEATHER],
        )
        assert second.choices[0].message.content, (step, second)

        step = f"{model}: streamed tools"
        stream = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Weather in Paris?"}],
            tools=[WEATHER],
            stream=True,
            extra_headers={"x-mock-scenario": "tool_call"},
        )
        args = ""
        names = []
        for chunk in stream:
            for c in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                if c.function and c.function.name:
                    names.append(c.function.name)
                args += (c.function.arguments or "") if c.function else ""
        assert names == ["get_weather"], (step, names)
        assert json.loads(args)["location"] == "Paris", (step, args)

    step = "embeddings"
    emb = client.embeddings.create(model="openai/text-embedding-3-small", input="hello")
    assert emb.data and len(emb.data[0].embedding) > 0, (step, emb)

    for model in ["anthropic/claude-sonnet-4-5", "google-ai-studio/gemini-2.5-flash"]:
        step = f"{model}: responses"
        resp = client.responses.create(model=model, instructions="Be brief.", input="Say hello")
        assert resp.output_text, (step, resp)
        assert resp.status == "completed", (step, resp)
        assert resp.usage and resp.usage.total_tokens > 0, (step, resp)
        step = f"{model}: responses stream"
        with client.responses.stream(model=model, input="Say hello") as stream:
            deltas = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
            final = stream.get_final_response()
        assert deltas and final.output_text == deltas, (step, deltas, final)

    step = "models"
    listed = client.models.list()
    assert isinstance(listed.data, list), (step, listed)

    step = "errors"
    try:
        client.chat.completions.create(model="anthropic/claude-sonnet-4-5", messages=[])
        raise AssertionError("empty messages must be refused")
    except openai.BadRequestError as e:
        assert e.body and e.body.get("param") == "messages", (step, e.body)
    try:
        client.chat.completions.create(
            model="anthropic/claude-sonnet-4-5",
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-mock-status": "429"},
        )
        raise AssertionError("a provider 429 must reach the SDK as a RateLimitError")
    except openai.RateLimitError as e:
        assert e.status_code == 429, (step, e)
    print("openai compat sdk: ok")


if __name__ == "__main__":
    main()
