"""The non-streamed `chat.completion` object, accumulated from the log. Pure.

`Answer` folds a stream's delta events into one assistant message the way
the official SDK's `get_final_completion()` folds the chunks of the same
stream (app/wire/openai.py), so that a streamed and a non-streamed request
give the same message: `content` is the text, or null when the answer holds
no text but a tool call, a refusal or reasoning; `refusal` the refusal text
or null; `tool_calls` each call with its arguments joined; reasoning as
`reasoning_content`, the key the stream uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.core.events import Done, Event, StreamMeta
from app.wire.openai import completion_id, usage_payload


@dataclass(slots=True)
class _Call:
    id: str
    name: str
    arguments: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Answer:
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    calls: dict[int, _Call] = field(default_factory=dict)
    other: bool = False  # a delta that is not text came

    def add(self, event: Event) -> None:
        kind = event.kind
        if kind == "token":
            self.text.append(event.text)
            return
        self.other = True
        if event.call is not None:
            self.calls[event.call.index] = _Call(event.call.id, event.call.name)
        elif kind == "tool_call_delta":
            call = self.calls.get(event.index)
            if call is not None:
                call.arguments.append(event.text)
        elif kind == "reasoning":
            self.reasoning.append(event.text)
        elif kind == "refusal":
            self.refusal.append(event.text)

    def message(self) -> dict[str, object]:
        content = "".join(self.text) if self.text or not self.other else None
        message: dict[str, object] = {
            "role": "assistant",
            "content": content,
            "refusal": "".join(self.refusal) if self.refusal else None,
        }
        if self.calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": "".join(call.arguments)},
                }
                for _, call in sorted(self.calls.items())
            ]
        if self.reasoning:
            message["reasoning_content"] = "".join(self.reasoning)
        return message


def completion_body(meta: StreamMeta, answer: Answer, done: Done) -> dict[str, object]:
    """The `chat.completion` object of a non-streaming request, in OpenAI's key order."""
    return {
        "id": completion_id(meta.stream_id),
        "object": "chat.completion",
        "created": meta.created,
        "model": meta.model,
        "choices": [
            {
                "index": 0,
                "message": answer.message(),
                "logprobs": None,
                "finish_reason": done.finish_reason,
            }
        ],
        "usage": usage_payload(done),
        "system_fingerprint": None,
    }
