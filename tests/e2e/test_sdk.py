"""The official ``openai`` and ``anthropic`` Python SDKs talking to a provider through Lethe.

Each test points an SDK client at Lethe (``base_url``), Lethe at the mock provider, and checks
two things: what the provider received (``/__mock/requests``) and what the SDK parsed. The mock
is steered with ``extra_headers`` (``x-mock-*``); Lethe does not forward its privacy headers
(``X-PII-*``, ``X-Compliance-Mode``, ``X-Log-*``) but forwards these.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Iterable

import anthropic
import openai
import pytest

from conftest import Mock, Proc, raw_request

CARD = "4111 1111 1111 1111"
EMAIL = "jane.doe@example.com"
PHONE = "415-555-0132"
SSN = "123-45-6789"

# Fragments that must never show up anywhere once Lethe has scrubbed a text, whole or cut.
LEAKS = (CARD, EMAIL, PHONE, SSN, "4111111111111111", "4111 1", "1111 1", "jane.doe", "example.com",
         "555-0132", "45-6789")

GPT = "gpt-e2e"
CLAUDE = "claude-e2e"

PROMPT = f"Customer {EMAIL}, phone {PHONE}, card {CARD}, SSN {SSN}."
REPLY = f"Reach {EMAIL} or {PHONE}; card {CARD}. Done."
REPLY_SCRUBBED = "Reach [EMAIL] or [PHONE]; card **** **** **** 1111. Done."

# (x-mock-delta-chars, x-mock-write-bytes): the mock's default, one character per event written a
# byte at a time, and odd sizes that cut values and events at arbitrary places.
FRAGMENTATION = [
    pytest.param({}, id="default"),
    pytest.param({"x-mock-delta-chars": "1", "x-mock-write-bytes": "1"}, id="delta1-write1"),
    pytest.param({"x-mock-delta-chars": "3", "x-mock-write-bytes": "7"}, id="delta3-write7"),
]

TOOLS_OPENAI = [{
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look a customer up.",
        "parameters": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    },
}]
TOOLS_ANTHROPIC = [{
    "name": "lookup",
    "description": "Look a customer up.",
    "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
}]


def assert_clean(text: str, what: str) -> None:
    for value in LEAKS:
        assert value not in text, f"{what} contains {value!r}: {text}"


def assert_provider_clean(mock: Mock) -> str:
    """Checks everything the provider received, headers included, and returns it as one
    string. (The mock's x-mock-reply header carries its reply percent-encoded.)"""
    requests = mock.requests()
    assert requests, "the provider received nothing"
    saw = json.dumps(requests)
    assert_clean(saw, "provider request")
    return saw


def encoded(text: str) -> str:
    """Every byte as %XX: Lethe scrubs header values too, so the reply the mock is told to give
    must not look like PII on its way there."""
    return "".join(f"%{b:02X}" for b in text.encode())


def reply_headers(extra: dict[str, str] | None = None, reply: str = REPLY) -> dict[str, str]:
    return {"x-mock-reply": encoded(reply), **(extra or {})}


def dump(objs: Iterable[Any]) -> str:
    """Every parsed SDK object, as JSON text, to search for leaks."""
    return "\n".join(o.model_dump_json() for o in objs)


# --------------------------------------------------------------------------------------------
# OpenAI: chat completions
# --------------------------------------------------------------------------------------------


def test_openai_chat_prompt_pii_never_reaches_the_provider(oai: openai.OpenAI, mock: Mock) -> None:
    completion = oai.chat.completions.create(
        model=GPT,
        messages=[
            {"role": "system", "content": f"Support agent for {EMAIL}."},
            {"role": "user", "content": [{"type": "text", "text": PROMPT}]},
        ],
        user=EMAIL,
        metadata={"note": f"call {PHONE}"},
    )
    saw = assert_provider_clean(mock)
    for label in ("[EMAIL]", "[PHONE]", "[SSN]", "**** **** **** 1111"):
        assert label in saw
    (req,) = mock.requests()
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["authorization"] == "Bearer sk-e2e-client", "the client's key passes through"
    body = json.loads(req["body"])
    assert body["model"] == GPT
    # The mock echoes the last message: the echo is of the scrubbed text.
    text = completion.choices[0].message.content
    assert text == "echo: Customer [EMAIL], phone [PHONE], card **** **** **** 1111, SSN [SSN]."
    assert completion.object == "chat.completion"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens > 0


def test_openai_chat_reply_pii_is_scrubbed(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(
        model=GPT,
        messages=[{"role": "user", "content": "hi"}],
        extra_headers=reply_headers(),
    )
    assert completion.choices[0].message.content == REPLY_SCRUBBED
    assert_clean(completion.model_dump_json(), "completion")


@pytest.mark.parametrize("include_usage", [False, True], ids=["no-usage", "include-usage"])
@pytest.mark.parametrize("fragmentation", FRAGMENTATION)
def test_openai_chat_stream_is_scrubbed(
    oai: openai.OpenAI, mock: Mock, fragmentation: dict[str, str], include_usage: bool
) -> None:
    extra: dict[str, Any] = {"stream_options": {"include_usage": True}} if include_usage else {}
    stream = oai.chat.completions.create(
        model=GPT,
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        extra_headers=reply_headers(fragmentation),
        **extra,
    )
    chunks = list(stream)
    assert_provider_clean(mock)
    assert_clean(dump(chunks), "chunks")
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == REPLY_SCRUBBED
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    if include_usage:
        assert chunks[-1].choices == [] and chunks[-1].usage is not None
        assert chunks[-1].usage.completion_tokens > 0
        assert all(c.usage is None for c in chunks[:-1])
    else:
        assert all(c.usage is None for c in chunks)


@pytest.mark.parametrize("fragmentation", FRAGMENTATION)
def test_openai_chat_tool_call_stream_arguments_are_scrubbed(
    oai: openai.OpenAI, fragmentation: dict[str, str]
) -> None:
    stream = oai.chat.completions.create(
        model=GPT,
        messages=[{"role": "user", "content": "look the customer up"}],
        tools=TOOLS_OPENAI,
        stream=True,
        extra_headers=reply_headers({"x-mock-tool-call": "lookup", **fragmentation}),
    )
    chunks = list(stream)
    assert_clean(dump(chunks), "chunks")
    calls = [call for c in chunks if c.choices for call in (c.choices[0].delta.tool_calls or [])]
    assert calls, "no tool call deltas"
    assert {call.index for call in calls} == {0}
    assert [call.id for call in calls if call.id] == ["call_mock"]
    assert [call.function.name for call in calls if call.function and call.function.name] == ["lookup"]
    arguments = "".join(call.function.arguments or "" for call in calls if call.function)
    assert json.loads(arguments) == {"text": REPLY_SCRUBBED}
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["tool_calls"]


def test_openai_chat_tool_call_with_the_stream_helper(oai: openai.OpenAI) -> None:
    """The SDK's accumulating helper rebuilds the call from the (scrubbed) deltas."""
    with oai.chat.completions.stream(
        model=GPT,
        messages=[{"role": "user", "content": "look the customer up"}],
        tools=TOOLS_OPENAI,
        extra_headers=reply_headers({"x-mock-tool-call": "lookup", "x-mock-delta-chars": "2"}),
    ) as stream:
        events = list(stream)
        final = stream.get_final_completion()
    assert any(e.type == "tool_calls.function.arguments.done" for e in events)
    (call,) = final.choices[0].message.tool_calls
    assert call.id == "call_mock" and call.function.name == "lookup"
    assert json.loads(call.function.arguments) == {"text": REPLY_SCRUBBED}
    assert_clean(final.model_dump_json(), "final completion")


def test_openai_chat_tool_call_non_streaming(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(
        model=GPT,
        messages=[{"role": "user", "content": "look the customer up"}],
        tools=TOOLS_OPENAI,
        extra_headers=reply_headers({"x-mock-tool-call": "lookup"}),
    )
    (call,) = completion.choices[0].message.tool_calls
    assert call.function.name == "lookup"
    assert json.loads(call.function.arguments) == {"text": REPLY_SCRUBBED}
    assert completion.choices[0].finish_reason == "tool_calls"


# --------------------------------------------------------------------------------------------
# OpenAI: completions, embeddings, responses, models
# --------------------------------------------------------------------------------------------


def test_openai_completions(oai: openai.OpenAI, mock: Mock) -> None:
    completion = oai.completions.create(model="gpt-3.5-turbo-instruct", prompt=PROMPT)
    assert_provider_clean(mock)
    assert completion.object == "text_completion"
    assert completion.choices[0].text == "echo: Customer [EMAIL], phone [PHONE], card **** **** **** 1111, SSN [SSN]."

    stream = oai.completions.create(
        model="gpt-3.5-turbo-instruct",
        prompt="hi",
        stream=True,
        extra_headers=reply_headers({"x-mock-delta-chars": "1", "x-mock-write-bytes": "1"}),
    )
    chunks = list(stream)
    assert_clean(dump(chunks), "chunks")
    assert "".join(c.choices[0].text for c in chunks if c.choices) == REPLY_SCRUBBED


def test_openai_embeddings(oai: openai.OpenAI, mock: Mock) -> None:
    result = oai.embeddings.create(model="text-embedding-3-small", input=[PROMPT, f"mail {EMAIL}"])
    saw = assert_provider_clean(mock)
    assert "[EMAIL]" in saw
    assert [e.index for e in result.data] == [0, 1]
    assert all(len(e.embedding) == 8 for e in result.data)
    assert all(isinstance(x, float) for e in result.data for x in e.embedding)
    # The mock's vectors are a function of the input: Lethe forwarded the scrubbed text.
    direct = raw_request(
        f"{mock.url}/v1/embeddings",
        body=json.dumps({"model": "m", "input": [f"mail [EMAIL]"]}).encode(),
        headers={"content-type": "application/json"},
    ).json()
    assert result.data[1].embedding == direct["data"][0]["embedding"]


def test_openai_responses_non_streaming(oai: openai.OpenAI, mock: Mock) -> None:
    response = oai.responses.create(model=GPT, input=PROMPT, instructions=f"Agent for {EMAIL}")
    assert_provider_clean(mock)
    assert response.object == "response" and response.status == "completed"
    assert response.output_text == "echo: Customer [EMAIL], phone [PHONE], card **** **** **** 1111, SSN [SSN]."
    response = oai.responses.create(model=GPT, input="hi", extra_headers=reply_headers())
    assert response.output_text == REPLY_SCRUBBED
    assert_clean(response.model_dump_json(), "response")


@pytest.mark.parametrize("fragmentation", FRAGMENTATION)
def test_openai_responses_stream(oai: openai.OpenAI, mock: Mock, fragmentation: dict[str, str]) -> None:
    stream = oai.responses.create(
        model=GPT,
        input=[{"role": "user", "content": PROMPT}],
        stream=True,
        extra_headers=reply_headers(fragmentation),
    )
    events = list(stream)
    assert_provider_clean(mock)
    assert_clean(dump(events), "events")
    types = [e.type for e in events]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert [e.sequence_number for e in events] == sorted(e.sequence_number for e in events)
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == REPLY_SCRUBBED
    (done,) = [e for e in events if e.type == "response.output_text.done"]
    assert done.text == deltas
    completed = events[-1].response
    assert completed.output_text == deltas, "response.completed carries the same scrubbed text"


def test_openai_responses_stream_helper(oai: openai.OpenAI) -> None:
    """The SDK's helper accumulates the deltas into a snapshot and checks it against the end."""
    with oai.responses.stream(
        model=GPT,
        input="hi",
        extra_headers=reply_headers({"x-mock-delta-chars": "2", "x-mock-write-bytes": "5"}),
    ) as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == REPLY_SCRUBBED
    assert final.output_text == REPLY_SCRUBBED


def test_openai_models_list(oai: openai.OpenAI, mock: Mock) -> None:
    models = list(oai.models.list())
    assert models and all(m.object == "model" and m.id for m in models)
    (req,) = mock.requests()
    assert req["method"] == "GET" and req["path"] == "/v1/models"


# --------------------------------------------------------------------------------------------
# Anthropic: messages
# --------------------------------------------------------------------------------------------


def test_anthropic_messages_non_streaming(ant: anthropic.Anthropic, mock: Mock) -> None:
    message = ant.messages.create(
        model=CLAUDE,
        max_tokens=256,
        system=f"Support agent for {EMAIL}.",
        messages=[{"role": "user", "content": [{"type": "text", "text": PROMPT}]}],
    )
    saw = assert_provider_clean(mock)
    assert "[EMAIL]" in saw and "[SSN]" in saw
    (req,) = mock.requests()
    assert req["path"] == "/v1/messages"
    # Recent SDKs send the key as a bearer token, older ones as x-api-key: either passes through.
    assert "sk-ant-e2e-client" in (req["headers"].get("x-api-key"), req["headers"].get("authorization", "")[7:])
    assert "anthropic-version" in req["headers"]
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text"
    assert message.content[0].text == "echo: Customer [EMAIL], phone [PHONE], card **** **** **** 1111, SSN [SSN]."
    message = ant.messages.create(
        model=CLAUDE,
        max_tokens=256,
        messages=[{"role": "user", "content": "hi"}],
        extra_headers=reply_headers(),
    )
    assert message.content[0].text == REPLY_SCRUBBED
    assert message.stop_reason == "end_turn"
    assert_clean(message.model_dump_json(), "message")


@pytest.mark.parametrize("fragmentation", FRAGMENTATION)
def test_anthropic_messages_stream_helper(
    ant: anthropic.Anthropic, mock: Mock, fragmentation: dict[str, str]
) -> None:
    with ant.messages.stream(
        model=CLAUDE,
        max_tokens=256,
        messages=[{"role": "user", "content": PROMPT}],
        extra_headers=reply_headers(fragmentation),
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert_provider_clean(mock)
    assert text == REPLY_SCRUBBED
    assert [b.type for b in final.content] == ["text"]
    assert final.content[0].text == REPLY_SCRUBBED
    assert final.stop_reason == "end_turn"
    assert_clean(final.model_dump_json(), "final message")


@pytest.mark.parametrize("fragmentation", FRAGMENTATION)
def test_anthropic_messages_create_stream(ant: anthropic.Anthropic, fragmentation: dict[str, str]) -> None:
    stream = ant.messages.create(
        model=CLAUDE,
        max_tokens=256,
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        extra_headers=reply_headers(fragmentation),
    )
    events = list(stream)
    assert_clean(dump(events), "events")
    types = [e.type for e in events]
    assert types[0] == "message_start" and types[-1] == "message_stop"
    assert "message_delta" in types
    text = "".join(
        e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta"
    )
    assert text == REPLY_SCRUBBED


def test_anthropic_thinking_stream(ant: anthropic.Anthropic) -> None:
    with ant.messages.stream(
        model=CLAUDE,
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "hi"}],
        extra_headers=reply_headers({"x-mock-delta-chars": "1", "x-mock-write-bytes": "3"}),
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    assert_clean(dump(events), "events")
    thinking = "".join(e.thinking for e in events if e.type == "thinking")
    assert thinking == f"thinking: {REPLY_SCRUBBED}"
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == f"thinking: {REPLY_SCRUBBED}"
    assert final.content[0].signature, "the signature survives"
    assert final.content[1].text == REPLY_SCRUBBED

    stream = ant.messages.create(
        model=CLAUDE,
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        extra_headers=reply_headers(),
    )
    raw_events = list(stream)
    deltas = [e.delta for e in raw_events if e.type == "content_block_delta"]
    assert "".join(d.thinking for d in deltas if d.type == "thinking_delta") == f"thinking: {REPLY_SCRUBBED}"
    assert any(d.type == "signature_delta" and d.signature for d in deltas)
    assert "".join(d.text for d in deltas if d.type == "text_delta") == REPLY_SCRUBBED

    message = ant.messages.create(
        model=CLAUDE,
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "hi"}],
        extra_headers=reply_headers(),
    )
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == f"thinking: {REPLY_SCRUBBED}"
    assert message.content[1].text == REPLY_SCRUBBED


@pytest.mark.parametrize("fragmentation", FRAGMENTATION)
def test_anthropic_tool_use_stream(ant: anthropic.Anthropic, fragmentation: dict[str, str]) -> None:
    with ant.messages.stream(
        model=CLAUDE,
        max_tokens=256,
        tools=TOOLS_ANTHROPIC,
        messages=[{"role": "user", "content": "look the customer up"}],
        extra_headers=reply_headers({"x-mock-tool-call": "lookup", **fragmentation}),
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    assert_clean(dump(events), "events")
    partial = "".join(
        e.delta.partial_json for e in events if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    )
    assert json.loads(partial) == {"text": REPLY_SCRUBBED}
    tool_uses = [b for b in final.content if b.type == "tool_use"]
    assert len(tool_uses) == 1
    assert tool_uses[0].name == "lookup"
    assert tool_uses[0].input == {"text": REPLY_SCRUBBED}
    assert final.stop_reason == "tool_use"


def test_anthropic_tool_use_non_streaming(ant: anthropic.Anthropic) -> None:
    message = ant.messages.create(
        model=CLAUDE,
        max_tokens=256,
        tools=TOOLS_ANTHROPIC,
        messages=[{"role": "user", "content": "look the customer up"}],
        extra_headers=reply_headers({"x-mock-tool-call": "lookup"}),
    )
    tool_uses = [b for b in message.content if b.type == "tool_use"]
    assert len(tool_uses) == 1 and tool_uses[0].input == {"text": REPLY_SCRUBBED}
    assert message.stop_reason == "tool_use"


# --------------------------------------------------------------------------------------------
# The async clients (their own SSE decoding path)
# --------------------------------------------------------------------------------------------


def test_async_clients_stream_scrubbed_text(lethe: Proc) -> None:
    headers = reply_headers({"x-mock-delta-chars": "1", "x-mock-write-bytes": "1"})

    async def run() -> tuple[str, str, str]:
        async with openai.AsyncOpenAI(
            base_url=f"{lethe.url}/v1", api_key="sk-e2e-client", max_retries=0, timeout=10
        ) as oai_async, anthropic.AsyncAnthropic(
            base_url=lethe.url, api_key="sk-ant-e2e-client", max_retries=0, timeout=10
        ) as ant_async:
            stream = await oai_async.chat.completions.create(
                model=GPT, messages=[{"role": "user", "content": "hi"}], stream=True, extra_headers=headers
            )
            chat = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            stream = await oai_async.responses.create(model=GPT, input="hi", stream=True, extra_headers=headers)
            responses = "".join([e.delta async for e in stream if e.type == "response.output_text.delta"])
            async with ant_async.messages.stream(
                model=CLAUDE, max_tokens=256, messages=[{"role": "user", "content": "hi"}], extra_headers=headers
            ) as astream:
                messages = "".join([t async for t in astream.text_stream])
        return chat, responses, messages

    assert asyncio.run(run()) == (REPLY_SCRUBBED, REPLY_SCRUBBED, REPLY_SCRUBBED)


# --------------------------------------------------------------------------------------------
# Placeholders and privacy headers
# --------------------------------------------------------------------------------------------

PLACEHOLDER = {"X-PII-Masking": "placeholder"}
MAIL_PROMPT = f"mail {EMAIL} twice: {EMAIL}"


def test_openai_placeholders_round_trip(oai: openai.OpenAI, mock: Mock) -> None:
    completion = oai.chat.completions.create(
        model=GPT, messages=[{"role": "user", "content": MAIL_PROMPT}], extra_headers=PLACEHOLDER
    )
    saw = assert_provider_clean(mock)
    assert "mail [EMAIL_1] twice: [EMAIL_1]" in saw
    assert completion.choices[0].message.content == f"echo: {MAIL_PROMPT}"

    mock.forget()
    stream = oai.chat.completions.create(
        model=GPT,
        messages=[{"role": "user", "content": MAIL_PROMPT}],
        stream=True,
        extra_headers={**PLACEHOLDER, "x-mock-delta-chars": "1", "x-mock-write-bytes": "2"},
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert_provider_clean(mock)
    assert text == f"echo: {MAIL_PROMPT}"

    # A value the provider makes up itself is labelled, not restored.
    completion = oai.chat.completions.create(
        model=GPT,
        messages=[{"role": "user", "content": MAIL_PROMPT}],
        extra_headers={**PLACEHOLDER, "x-mock-reply": encoded("from bob@corp.io to [EMAIL_1]")},
    )
    assert completion.choices[0].message.content == f"from [EMAIL] to {EMAIL}"

    mock.forget()
    response = oai.responses.create(model=GPT, input=MAIL_PROMPT, extra_headers=PLACEHOLDER)
    assert "[EMAIL_1]" in assert_provider_clean(mock)
    assert response.output_text == f"echo: {MAIL_PROMPT}"


def test_anthropic_placeholders_round_trip(ant: anthropic.Anthropic, mock: Mock) -> None:
    message = ant.messages.create(
        model=CLAUDE,
        max_tokens=256,
        messages=[{"role": "user", "content": MAIL_PROMPT}],
        extra_headers=PLACEHOLDER,
    )
    saw = assert_provider_clean(mock)
    assert "mail [EMAIL_1] twice: [EMAIL_1]" in saw
    assert message.content[0].text == f"echo: {MAIL_PROMPT}"

    mock.forget()
    with ant.messages.stream(
        model=CLAUDE,
        max_tokens=256,
        messages=[{"role": "user", "content": MAIL_PROMPT}],
        extra_headers={**PLACEHOLDER, "x-mock-delta-chars": "1", "x-mock-write-bytes": "2"},
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert_provider_clean(mock)
    assert text == f"echo: {MAIL_PROMPT}"
    assert final.content[0].text == f"echo: {MAIL_PROMPT}"


def test_privacy_headers_are_not_forwarded(oai: openai.OpenAI, ant: anthropic.Anthropic, mock: Mock) -> None:
    privacy = {
        "X-PII-Masking": "placeholder",
        "X-PII-Types": "email,ssn",
        "X-Compliance-Mode": "GDPR",
        "X-Log-Request": "true",
        "X-Log-User-Id": "user-42",
    }
    oai.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], extra_headers=privacy)
    ant.messages.create(
        model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}], extra_headers=privacy
    )
    requests = mock.requests()
    assert len(requests) == 2
    for req in requests:
        forwarded = {h for h in req["headers"] if h.startswith(("x-pii-", "x-log-", "x-compliance-"))}
        assert forwarded == set(), f"{req['path']}: {forwarded}"


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_rate_limit_maps_to_the_sdk_exceptions(
    oai: openai.OpenAI, ant: anthropic.Anthropic, stream: bool
) -> None:
    with pytest.raises(openai.RateLimitError) as oerr:
        oai.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=stream,
            extra_headers={"x-mock-status": "429"},
        )
    assert oerr.value.status_code == 429
    assert isinstance(oerr.value.body, dict) and oerr.value.body.get("type") == "rate_limit_error"
    with pytest.raises(anthropic.RateLimitError) as aerr:
        ant.messages.create(
            model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}], stream=stream,
            extra_headers={"x-mock-status": "429"},
        )
    assert aerr.value.status_code == 429
    assert isinstance(aerr.value.body, dict) and aerr.value.body["error"]["type"] == "rate_limit_error"


@pytest.mark.parametrize(
    ("status", "openai_error", "anthropic_error", "anthropic_type"),
    [
        (400, openai.BadRequestError, anthropic.BadRequestError, "invalid_request_error"),
        (401, openai.AuthenticationError, anthropic.AuthenticationError, "authentication_error"),
        (403, openai.PermissionDeniedError, anthropic.PermissionDeniedError, "permission_error"),
        (500, openai.InternalServerError, anthropic.InternalServerError, "api_error"),
        (529, openai.InternalServerError, anthropic.OverloadedError, "overloaded_error"),
    ],
)
def test_provider_error_statuses_map_to_the_sdk_exceptions(
    oai: openai.OpenAI, ant: anthropic.Anthropic, status: int, openai_error: type, anthropic_error: type,
    anthropic_type: str,
) -> None:
    headers = {"x-mock-status": str(status)}
    with pytest.raises(openai_error) as oerr:
        oai.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], extra_headers=headers)
    assert oerr.value.status_code == status
    assert isinstance(oerr.value.body, dict) and oerr.value.body.get("message")
    with pytest.raises(anthropic_error) as aerr:
        ant.messages.create(
            model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}], extra_headers=headers
        )
    assert aerr.value.status_code == status
    assert isinstance(aerr.value.body, dict) and aerr.value.body["error"]["type"] == anthropic_type


def provider_stream_length(mock: Mock, path: str, body: dict[str, Any], headers: dict[str, str]) -> int:
    """How many body bytes the mock sends for this request, asked directly (not through Lethe)."""
    reply = raw_request(
        f"{mock.url}{path}",
        body=json.dumps(body).encode(),
        headers={"content-type": "application/json", **headers},
    )
    assert reply.status == 200
    return len(reply.body)


CUT_REPLY = f"The number is {CARD}, the mail {EMAIL}, and more text after them."
CUT_REPLY_SCRUBBED = "The number is **** **** **** 1111, the mail [EMAIL], and more text after them."
CUT_HEADERS = {"x-mock-reply": encoded(CUT_REPLY), "x-mock-delta-chars": "2"}
CUTS = 12


def cut_points(total: int) -> list[int]:
    return sorted({max(1, total * i // CUTS) for i in range(1, CUTS)})


def test_openai_mid_stream_failure_raises_api_error(oai: openai.OpenAI, mock: Mock) -> None:
    chat = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    total = provider_stream_length(mock, "/v1/chat/completions", chat, CUT_HEADERS)
    for cut in cut_points(total):
        received: list[Any] = []
        with pytest.raises(openai.APIError) as err:
            for chunk in oai.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}], stream=True,
                extra_headers={**CUT_HEADERS, "x-mock-fail-after-bytes": str(cut)},
            ):
                received.append(chunk)
        assert_clean(dump(received), f"chat chunks before the failure at {cut}/{total}")
        assert "upstream stream failed" in err.value.message, err.value.message
        text = "".join(c.choices[0].delta.content or "" for c in received if c.choices)
        assert CUT_REPLY_SCRUBBED.startswith(text), f"{cut}/{total}: {text!r}"

    responses = {"model": "m", "stream": True, "input": "hi"}
    total = provider_stream_length(mock, "/v1/responses", responses, CUT_HEADERS)
    for cut in cut_points(total):
        events: list[Any] = []
        with pytest.raises(openai.APIError) as err:
            for event in oai.responses.create(
                model="m", input="hi", stream=True,
                extra_headers={**CUT_HEADERS, "x-mock-fail-after-bytes": str(cut)},
            ):
                events.append(event)
        assert_clean(dump(events), f"responses events before the failure at {cut}/{total}")
        assert "upstream stream failed" in err.value.message, err.value.message


def test_anthropic_mid_stream_failure_raises_api_error(ant: anthropic.Anthropic, mock: Mock) -> None:
    body = {"model": "m", "stream": True, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    total = provider_stream_length(mock, "/v1/messages", body, CUT_HEADERS)
    for cut in cut_points(total):
        headers = {**CUT_HEADERS, "x-mock-fail-after-bytes": str(cut)}
        events: list[Any] = []
        with pytest.raises(anthropic.APIError) as err:
            for event in ant.messages.create(
                model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}], stream=True,
                extra_headers=headers,
            ):
                events.append(event)
        assert_clean(dump(events), f"events before the failure at {cut}/{total}")
        assert "upstream stream failed" in str(err.value), str(err.value)

        text: list[str] = []
        with pytest.raises(anthropic.APIError):
            with ant.messages.stream(
                model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}], extra_headers=headers,
            ) as stream:
                for piece in stream.text_stream:
                    text.append(piece)
        assert CUT_REPLY_SCRUBBED.startswith("".join(text)), f"{cut}/{total}: {text!r}"


def test_malformed_requests_are_400(oai: openai.OpenAI, ant: anthropic.Anthropic, lethe: Proc, mock: Mock) -> None:
    # The SDKs' low-level post sends any JSON: an array is not a request object.
    with pytest.raises(openai.BadRequestError) as oerr:
        oai.post("/chat/completions", body=[1, 2], cast_to=object)
    assert oerr.value.status_code == 400
    assert isinstance(oerr.value.body, dict) and oerr.value.body["type"] == "invalid_request_error"
    with pytest.raises(anthropic.BadRequestError) as aerr:
        ant.post("/v1/messages", body=[1, 2], cast_to=object)
    assert aerr.value.status_code == 400
    assert isinstance(aerr.value.body, dict) and aerr.value.body["type"] == "error"
    assert aerr.value.body["error"]["type"] == "invalid_request_error"

    # Bytes that are not JSON at all, with PII in them: a generic answer that echoes nothing.
    secret = f"not json {EMAIL}".encode()
    reply = raw_request(
        f"{lethe.url}/v1/chat/completions", body=secret,
        headers={"content-type": "application/json", "authorization": "Bearer sk-e2e-client"},
    )
    assert reply.status == 400
    assert reply.json()["error"]["type"] == "invalid_request_error"
    assert_clean(reply.body.decode(), "error answer")
    reply = raw_request(
        f"{lethe.url}/v1/messages", body=b"{oops " + secret,
        headers={"content-type": "application/json", "x-api-key": "k", "anthropic-version": "2023-06-01"},
    )
    assert reply.status == 400
    assert reply.json()["type"] == "error" and reply.json()["error"]["type"] == "invalid_request_error"
    assert_clean(reply.body.decode(), "error answer")
    assert mock.requests() == [], "malformed requests were forwarded"
