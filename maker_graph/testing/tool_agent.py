"""`SimulatedToolModel`: a tool-calling chat model that picks the wrong tool on purpose.

For agents (`create_agent`, `ToolNode` graphs): a `policy` says what the right
move is for the conversation so far (a tool call, or a final text answer), and
the model makes it with probability `1 - wrong_tool - wrong_argument - ...`.
Its mistakes are correlated the way a real model's are: the wrong tool is the
same plausible neighbour for a given conversation, and the wrong argument the
same near-miss, so wrong samples can agree with each other. It can also emit
the failures a provider reports: a call of a tool it was not given, arguments
that fail the tool's schema, or a call whose argument JSON did not parse
(`invalid_tool_calls`).

Randomness is keyed on the seed, the prompt and the sample index
(`maker_sample_index` in run metadata, else a per-prompt call count), so runs
are reproducible under any concurrency.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict

from .chat import SampleIndexedChatModel, prompt_key
from .errors_model import stable_hash, uniforms

__all__ = ["SimulatedToolModel", "near_miss"]

Action = dict[str, Any]
"""A tool call to make: `{"name": ..., "args": {...}}`."""
Policy = Callable[[list[BaseMessage]], "Action | str"]


def near_miss(args: dict[str, Any]) -> dict[str, Any]:
    """The default wrong argument: every string gets a `"0"` appended, numbers grow by one."""
    out: dict[str, Any] = {}
    for name, value in args.items():
        if isinstance(value, bool):
            out[name] = not value
        elif isinstance(value, (int, float)):
            out[name] = value + 1
        elif isinstance(value, str):
            out[name] = value + "0"
        else:
            out[name] = value
    return out


class SimulatedToolModel(SampleIndexedChatModel):
    """A chat model whose tool choice is right with probability `1 - (sum of the rates)`.

    Args:
        policy: the right move for the messages so far: an action dict (a tool call)
            or a text (the final answer, never wrong).
        wrong_tool: rate of calling another of the bound tools with the same arguments
            (the same neighbour for a given conversation).
        wrong_argument: rate of the right tool with `wrong_args(args)`.
        unknown_tool: rate of calling a tool that was never bound.
        bad_args: rate of the right tool with its arguments missing (fails the schema).
        malformed: rate of a call whose argument JSON the provider could not parse.
        seed: the dice.

    Example:
        >>> model = SimulatedToolModel(policy=lambda msgs: "done")
        >>> model.invoke("hi").content
        'done'
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    policy: Policy
    wrong_tool: float = 0.15
    wrong_argument: float = 0.10
    unknown_tool: float = 0.0
    bad_args: float = 0.0
    malformed: float = 0.0
    wrong_args: Callable[[dict[str, Any]], dict[str, Any]] = near_miss
    seed: int = 0
    model_name: str = "simulated-tools"

    @property
    def _llm_type(self) -> str:
        return "maker-graph-simulated-tools"

    def _respond(
        self, messages: list[BaseMessage], metadata: dict[str, Any] | None, kwargs: dict[str, Any]
    ) -> ChatResult:
        key = prompt_key(messages)
        index = self._sample_index(key, metadata)
        meta = {
            "model_name": self.model_name,
            "finish_reason": "stop",
            "temperature": kwargs.get("temperature"),
        }
        move = self.policy(messages)
        if isinstance(move, str):
            message = AIMessage(content=move, response_metadata=meta)
            return ChatResult(generations=[ChatGeneration(message=message)])
        names = [t.get("function", {}).get("name") for t in kwargs.get("tools") or []]
        u = uniforms(self.seed, key, index, "tool")[0]
        call_id = f"call_{stable_hash((key, index))}"
        name, args = move["name"], dict(move.get("args", {}))
        invalid: list[dict[str, Any]] = []
        outcome = "right"
        for kind, rate in (
            ("wrong_tool", self.wrong_tool),
            ("wrong_argument", self.wrong_argument),
            ("unknown_tool", self.unknown_tool),
            ("bad_args", self.bad_args),
            ("malformed", self.malformed),
        ):
            if u < rate:
                outcome = kind
                break
            u -= rate
        if outcome == "wrong_tool":
            others = sorted(n for n in names if n and n != name)
            if others:  # the same neighbour for this conversation: correlated errors
                name = others[int(uniforms(self.seed, key, "rival")[0] * len(others))]
            else:
                args = self.wrong_args(args)
        elif outcome == "wrong_argument":
            args = self.wrong_args(args)
        elif outcome == "unknown_tool":
            name = "escalate_to_manager"
        elif outcome == "bad_args":
            args = {}
        elif outcome == "malformed":
            invalid = [
                {
                    "name": name,
                    "args": '{"order_id": "A',
                    "id": call_id,
                    "error": "Unterminated string",
                    "type": "invalid_tool_call",
                }
            ]
        meta["finish_reason"] = "tool_calls"
        message = AIMessage(
            content="",
            tool_calls=[] if invalid else [{"name": name, "args": args, "id": call_id}],
            invalid_tool_calls=invalid,  # type: ignore[arg-type]
            response_metadata=meta,
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._respond(messages, run_manager.metadata if run_manager else None, kwargs)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._respond(messages, run_manager.metadata if run_manager else None, kwargs)
