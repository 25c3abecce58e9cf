"""Reads the mock provider with OpenAI's and Anthropic's official Python SDKs, unchanged.

Usage: sdk_check.py BASE_URL   (BASE_URL is http://127.0.0.1:PORT). Prints "ok" and exits 0 when every check holds.
"""

import sys

import anthropic
import openai

base = sys.argv[1]
oa = openai.OpenAI(base_url=base + "/v1", api_key="sk-test", max_retries=0)
an = anthropic.Anthropic(base_url=base, api_key="sk-ant-test", max_retries=0)
text = "Hello from the mock provider"  # DEFAULT_CHUNKS = 5 pieces

chat = oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
assert chat.choices[0].message.content == text, chat
assert chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens
assert chat.usage.prompt_tokens_details.cached_tokens == 0

stream = oa.chat.completions.create(
    model="gpt-4o-mini",
    messages=[{"role": "user", "content": "hi"}],
    stream=True,
    stream_options={"include_usage": True},
)
pieces, usage = [], None
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        pieces.append(chunk.choices[0].delta.content)
    if chunk.usage:
        usage = chunk.usage
assert "".join(pieces) == text, pieces
assert usage is not None and usage.completion_tokens == 5, usage

resp = oa.responses.create(model="gpt-4.1", input="hi")
assert resp.output_text == text and resp.usage.output_tokens == 5, resp
with oa.responses.stream(model="gpt-4.1", input="hi") as rs:
    deltas = [e.delta for e in rs if e.type == "response.output_text.delta"]
    final = rs.get_final_response()
assert "".join(deltas) == text and final.usage.output_tokens == 5, final

emb = oa.embeddings.create(model="text-embedding-3-small", input=["a", "b"])  # base64 by default
assert len(emb.data) == 2 and len(emb.data[0].embedding) == 8, emb

msg = an.messages.create(model="claude-mock-1", max_tokens=64, messages=[{"role": "user", "content": "hi"}])
assert msg.content[0].text == text, msg
assert msg.usage.cache_read_input_tokens == 0 and msg.usage.output_tokens == 5
with an.messages.stream(model="claude-mock-1", max_tokens=64, messages=[{"role": "user", "content": "hi"}]) as ms:
    streamed = "".join(ms.text_stream)
    final = ms.get_final_message()
assert streamed == text and final.usage.output_tokens == 5 and final.usage.input_tokens > 0, final

try:
    oa.chat.completions.create(
        model="m", messages=[], extra_headers={"x-mock-status": "429"}
    )
    raise AssertionError("expected a rate limit error")
except openai.RateLimitError as e:
    assert e.code == "rate_limit_exceeded", e
try:
    an.messages.create(
        model="m", max_tokens=1, messages=[], extra_headers={"x-mock-status": "529"}
    )
    raise AssertionError("expected an overloaded error")
except anthropic.APIStatusError as e:
    assert e.status_code == 529 and e.body["error"]["type"] == "overloaded_error", e
try:
    oa.chat.completions.create(model="m", messages=[], extra_headers={"x-mock-status": "401"})
    raise AssertionError("expected an authentication error")
except openai.AuthenticationError as e:
    assert e.code == "invalid_api_key", e

print("ok")
