"""The Hanoi step prompt's paraphrases: same facts, other words, rotated per sample."""

from __future__ import annotations

import asyncio
import string
from typing import Any

from maker_graph.sampling import ChatModelSampler
from maker_graph.tasks.hanoi import HanoiTask, simulated_chat_model
from maker_graph.vote import VotePolicy, Voter


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_wording_is_distinct_and_fills_the_same_fields() -> None:
    task = HanoiTask(4)
    assert len(task.wordings) >= 3
    assert len(set(task.wordings)) == len(task.wordings)
    assert {frozenset(_fields(w)) for w in task.wordings} == {
        frozenset({"n", "cycle", "previous", "state"})
    }


def test_each_wording_states_the_step_and_the_answer_format() -> None:
    task = HanoiTask(5)
    state, previous = task.initial_state(), None
    for step in range(12):
        step_input = task.step_input(state, previous, step)
        texts = [build(step_input) for build in task.rotated_prompts()]
        assert texts[0] == task.prompt(step_input)
        for text in texts:
            # The simulated chat model reads the step back from any wording ...
            assert task.read_prompt(text) == (state, previous)
            # ... and each asks for the two lines the strict parser accepts.
            assert "move = [disk, from_peg, to_peg]\nnext_state = [[...], [...], [...]]" in text
            assert "0 -> 2 -> 1 -> 0" in text  # the odd-disk cycle, in every wording
        truth = task.true_step(state, previous)
        state, previous = truth.next_state, truth.action


def test_a_rotated_sampler_asks_each_wording_in_turn_and_votes_right() -> None:
    task = HanoiTask(3)
    asked: list[int] = []

    def logged(i: int, build: Any) -> Any:
        def prompt(step_input: Any) -> str:
            asked.append(i)
            return str(build(step_input))

        return prompt

    builders = [logged(i, b) for i, b in enumerate(task.rotated_prompts())]
    sampler = ChatModelSampler(simulated_chat_model(task), prompt=builders)
    step_input = task.step_input(task.initial_state(), None, 0)
    result = asyncio.run(Voter(sampler, parser=task.parse, policy=VotePolicy(k=3)).vote(step_input))
    # k = 3 agreeing samples: one per wording, and the simulated model (which reads the
    # step back from the prompt) answered every wording with the true move.
    assert sorted(asked) == [0, 1, 2]
    assert result.winner == task.true_step(task.initial_state(), None)


def test_the_cli_option_rotates_the_wordings_of_a_chat_model() -> None:
    from typer.testing import CliRunner

    from maker_graph.cli import app, load_commands
    from maker_graph.cli._hanoi_models import choose_sampler

    task = HanoiTask(3)
    rotated, _ = choose_sampler(task, "simulated-chat", 0.0, 0, None, rotate=True)
    plain, _ = choose_sampler(task, "simulated-chat", 0.0, 0, None)
    assert len(rotated.prompt) == 3 and not isinstance(plain.prompt, list)
    load_commands()
    args = ["hanoi", "--disks", "3", "--model", "simulated-chat", "--prompt-rotation"]
    result = CliRunner().invoke(app, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "solved: true" in result.output
