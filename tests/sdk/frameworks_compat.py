"""Drives the gateway's OpenAI-compatible endpoint (/compat) with LangChain's and LlamaIndex's OpenAI clients.

Usage: python frameworks_compat.py INFERENCE_BASE ACCOUNT GATEWAY
The gateway must route openai, anthropic, google-ai-studio and cohere to a mock provider (tests/mock-providers).
LangChain: `ChatOpenAI` invoke, stream (with usage), async invoke, `bind_tools` (a tool call and the tool-result
turn, whole and streamed) and `OpenAIEmbeddings`. LlamaIndex: `OpenAILike` chat, stream_chat and a tool call.
Nothing may reach beyond 127.0.0.1: an audit hook refuses any other connection or name lookup, so a code path that
would download (tiktoken's encodings, nltk's data) fails here instead of passing on a machine that happens to be
online. Exits non-zero (with the failing step) on any difference from what the frameworks expect.
"""
import asyncio
import atexit
import ipaddress
import json
import os
import shutil
import socket
import sys
import tempfile

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


def _is_loopback(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _offline_guard(event: str, args: tuple) -> None:
    """Refuses every connection and name lookup that is not loopback (audit events of the socket module)."""
    if event == "socket.getaddrinfo":
        host = args[0]
    elif event == "socket.connect":
        sock, address = args[0], args[1]
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return
        host = address[0]
    else:
        return
    if host is not None and not _is_loopback(host):
        raise RuntimeError(f"network access outside 127.0.0.1 attempted ({event} {host!r})")


# Before any framework is imported: an empty encoding cache, so tiktoken cannot quietly use one a developer has,
# and the guard for everything that runs after.
os.environ["TIKTOKEN_CACHE_DIR"] = tempfile.mkdtemp(prefix="gatehouse-tiktoken-")
atexit.register(shutil.rmtree, os.environ["TIKTOKEN_CACHE_DIR"], True)
sys.addaudithook(_offline_guard)

try:
    from langchain_core.messages import HumanMessage, SystemMessage, ToolMessage
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI, OpenAIEmbeddings
    from llama_index.core.llms import ChatMessage
    from llama_index.core.tools import FunctionTool
    from llama_index.llms.openai_like import OpenAILike
except ImportError as e:
    sys.exit(f"{e}: this python needs `pip install langchain-openai llama-index-llms-openai-like` (.ci/run does)")

MODELS = [
    "anthropic/claude-sonnet-4-5",
    "google-ai-studio/gemini-2.5-flash",
    "cohere/command-a-03-2025",
    "openai/gpt-4o-mini",
]
API_KEY = "sk-test"
TOOL_CALL = {"x-mock-scenario": "tool_call"}


@tool
def get_weather(location: str) -> str:
    """Weather in a city."""
    return f"18 degrees in {location}"


def weather(location: str) -> str:
    """Weather in a city."""
    return f"18 degrees in {location}"


def langchain_checks(compat: str, model: str) -> None:
    llm = ChatOpenAI(base_url=compat, api_key=API_KEY, model=model, max_retries=0, stream_usage=True)

    step = f"langchain {model}: invoke"
    reply = llm.invoke([SystemMessage("Be brief."), HumanMessage("Say hello")])
    assert isinstance(reply.content, str) and reply.content, (step, reply)
    assert reply.response_metadata.get("finish_reason") == "stop", (step, reply)
    assert reply.usage_metadata and reply.usage_metadata["total_tokens"] > 0, (step, reply)

    step = f"langchain {model}: stream"
    chunks = list(llm.stream("Say hello"))
    assert len(chunks) > 1, (step, chunks)
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole += chunk
    assert isinstance(whole.content, str) and whole.content, (step, whole)
    assert whole.usage_metadata and whole.usage_metadata["total_tokens"] > 0, (step, whole)
    assert whole.response_metadata.get("finish_reason") == "stop", (step, whole)

    step = f"langchain {model}: bind_tools"
    calling = ChatOpenAI(
        base_url=compat, api_key=API_KEY, model=model, max_retries=0, default_headers=TOOL_CALL
    ).bind_tools([get_weather])
    question = HumanMessage("Weather in Paris?")
    first = calling.invoke([question])
    assert [c["name"] for c in first.tool_calls] == ["get_weather"], (step, first)
    call = first.tool_calls[0]
    assert call["args"] == {"location": "Paris"}, (step, first)
    assert first.response_metadata.get("finish_reason") == "tool_calls", (step, first)
    result = ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"])
    second = llm.bind_tools([get_weather]).invoke([question, first, result])
    assert isinstance(second.content, str) and second.content and not second.tool_calls, (step, second)

    step = f"langchain {model}: streamed bind_tools"
    chunks = list(calling.stream([question]))
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole += chunk
    assert [c["name"] for c in whole.tool_calls] == ["get_weather"], (step, whole)
    assert whole.tool_calls[0]["args"] == {"location": "Paris"}, (step, whole)


async def langchain_async_checks(compat: str) -> None:
    # One event loop for every model: langchain-openai shares its async HTTP client, which is bound to a loop.
    for model in MODELS:
        llm = ChatOpenAI(base_url=compat, api_key=API_KEY, model=model, max_retries=0, stream_usage=True)
        step = f"langchain {model}: ainvoke"
        reply = await llm.ainvoke("Say hello")
        assert isinstance(reply.content, str) and reply.content, (step, reply)
        step = f"langchain {model}: astream"
        text = "".join([c.content async for c in llm.astream("Say hello")])
        assert text == reply.content, (step, text, reply)


def llamaindex_checks(compat: str, model: str) -> None:
    llm = OpenAILike(
        api_base=compat, api_key=API_KEY, model=model, is_chat_model=True, context_window=200_000, max_retries=0
    )
    messages = [ChatMessage(role="system", content="Be brief."), ChatMessage(role="user", content="Say hello")]

    step = f"llamaindex {model}: chat"
    reply = llm.chat(messages)
    assert reply.message.role == "assistant" and reply.message.content, (step, reply)

    step = f"llamaindex {model}: stream_chat"
    deltas = [r.delta for r in llm.stream_chat(messages)]
    text = "".join(d or "" for d in deltas)
    assert len(deltas) > 1 and text, (step, deltas)

    step = f"llamaindex {model}: tool call"
    calling = OpenAILike(
        api_base=compat,
        api_key=API_KEY,
        model=model,
        is_chat_model=True,
        is_function_calling_model=True,
        context_window=200_000,
        max_retries=0,
        default_headers=TOOL_CALL,
    )
    reply = calling.chat_with_tools([FunctionTool.from_defaults(fn=weather)], user_msg="Weather in Paris?")
    calls = calling.get_tool_calls_from_response(reply, error_on_no_tool_call=True)
    assert [(c.tool_name, c.tool_kwargs) for c in calls] == [("weather", {"location": "Paris"})], (step, reply)


def main() -> None:
    base, account, gateway = sys.argv[1], sys.argv[2], sys.argv[3]
    compat = f"{base}/v1/{account}/{gateway}/compat"

    for model in MODELS:
        langchain_checks(compat, model)
        llamaindex_checks(compat, model)
    asyncio.run(langchain_async_checks(compat))

    step = "langchain embeddings"
    # check_embedding_ctx_length=False sends the texts as they are: the default counts tokens with tiktoken first.
    embeddings = OpenAIEmbeddings(
        base_url=compat,
        api_key=API_KEY,
        model="openai/text-embedding-3-small",
        check_embedding_ctx_length=False,
        max_retries=0,
    )
    vectors = embeddings.embed_documents(["hello", "world"])
    assert len(vectors) == 2 and all(len(v) > 0 for v in vectors), (step, vectors)
    query = embeddings.embed_query("hello")
    assert len(query) == len(vectors[0]), (step, query)
    json.dumps(query)  # plain floats
    print("frameworks compat: ok")


if __name__ == "__main__":
    main()
