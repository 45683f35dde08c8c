"""Towers of Hanoi as a maximally decomposed task: one move per voted step.

Three pegs (0, 1, 2), `n` disks numbered 1 (smallest) to `n`; every disk starts
on peg 0 and must end on peg 2. A state is three tuples of disk numbers, bottom
disk first; a move is `(disk, from_peg, to_peg)`. The optimal solution takes
`2**n - 1` moves and follows a rule that needs no memory beyond the previous move:

- if the previous move did not move disk 1 (or there was none), move disk 1 one
  peg along its fixed cycle (0 -> 1 -> 2 -> 0 for an even number of disks,
  0 -> 2 -> 1 -> 0 for an odd number);
- otherwise make the only legal move that does not move disk 1.

Every sample is told that rule, the current state and the previous move, and
must end its answer with exactly two lines::

    move = [1, 0, 1]
    next_state = [[4, 3, 2], [1], []]

`HanoiTask.parse` is strict: anything else is a red flag. `optimal_moves(n)`
computes the solution independently (from the binary expansion of the move
number), which is what a finished run is checked against.

Example:
    >>> task = HanoiTask(3)
    >>> state = task.initial_state()
    >>> task.true_step(state, None)
    StepAnswer(action=(1, 0, 2), next_state=((3, 2), (), (1,)))
    >>> task.parse("move = [1, 0, 2]\\nnext_state = [[3, 2], [], [1]]").action
    (1, 0, 2)
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

from ...errors import ConfigurationError
from ..base import StepAnswer
from .wordings import PARAPHRASES, PROMPT

if TYPE_CHECKING:
    from ...testing import ErrorModel, SimulatedSampler

__all__ = [
    "HanoiStep",
    "HanoiTask",
    "Move",
    "State",
    "apply_move",
    "format_answer",
    "legal_moves",
    "malformed_answers",
    "optimal_moves",
    "simulated_chat_model",
    "simulated_sampler",
    "state_text",
]

Move = tuple[int, int, int]
"""`(disk, from_peg, to_peg)`."""
State = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]
"""Three pegs, each a tuple of disk numbers from the bottom up."""

_MAX_DISKS = 64


class HanoiStep(NamedTuple):
    """What every sample of one Hanoi step receives.

    Attributes:
        state: the pegs before the move.
        previous_move: the move that produced `state` (None before the first move).
        step: the 0-based step index; identifies the step for simulated models and
            logs, and is deliberately left out of the prompt.
    """

    state: State
    previous_move: Move | None
    step: int


# --------------------------------------------------------------------------- rules


def _cycle(n: int) -> int:
    """How many pegs disk 1 advances per move: +1 for even n, +2 (i.e. -1) for odd n."""
    return 1 if n % 2 == 0 else 2


def apply_move(state: State, move: Move) -> State:
    """The state after `move`; raises `ValueError` if the move is illegal.

    Example:
        >>> apply_move(((2, 1), (), ()), (1, 0, 1))
        ((2,), (1,), ())
    """
    disk, src, dst = move
    if not (0 <= src <= 2 and 0 <= dst <= 2) or src == dst:
        raise ValueError(f"pegs must be two different values in 0..2, got {src} -> {dst}")
    source, target = state[src], state[dst]
    if not source or source[-1] != disk:
        raise ValueError(f"disk {disk} is not on top of peg {src}")
    if target and target[-1] < disk:
        raise ValueError(f"disk {disk} cannot go onto the smaller disk {target[-1]}")
    pegs = list(state)
    pegs[src] = source[:-1]
    pegs[dst] = target + (disk,)
    return (pegs[0], pegs[1], pegs[2])


def legal_moves(state: State) -> list[Move]:
    """Every legal move from `state`, in a fixed order (by source peg, then target)."""
    moves: list[Move] = []
    for src in range(3):
        if not state[src]:
            continue
        disk = state[src][-1]
        for dst in range(3):
            if dst != src and (not state[dst] or state[dst][-1] > disk):
                moves.append((disk, src, dst))
    return moves


def _strategy_move(state: State, previous_move: Move | None, n: int) -> Move:
    if previous_move is None or previous_move[0] != 1:
        src = next(p for p in range(3) if state[p] and state[p][-1] == 1)
        return (1, src, (src + _cycle(n)) % 3)
    # The two pegs without disk 1: the smaller top disk goes onto the other peg.
    a, b = (p for p in range(3) if not (state[p] and state[p][-1] == 1))
    top_a = state[a][-1] if state[a] else n + 1
    top_b = state[b][-1] if state[b] else n + 1
    if top_a == top_b:  # both empty: only possible once the tower is complete
        raise ValueError("no legal move other than disk 1: the puzzle is already solved")
    return (top_a, a, b) if top_a < top_b else (top_b, b, a)


def optimal_moves(n: int) -> Iterator[Move]:
    """The `2**n - 1` moves of the optimal solution from peg 0 to peg 2, computed directly.

    Move `m` (1-based) moves disk `1 + (number of trailing zero bits of m)` from peg
    `(m & (m - 1)) % 3` to peg `((m | (m - 1)) + 1) % 3`; that formula carries the
    tower to peg 2 for odd `n` and to peg 1 for even `n`, so pegs 1 and 2 are swapped
    for even `n`. It shares no code with the step rule, which makes it an
    independent check of a run.

    Example:
        >>> list(optimal_moves(2))
        [(1, 0, 1), (2, 0, 2), (1, 1, 2)]
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    swap = (0, 2, 1) if n % 2 == 0 else (0, 1, 2)
    for m in range(1, 2**n):
        yield ((m & -m).bit_length(), swap[(m & (m - 1)) % 3], swap[((m | (m - 1)) + 1) % 3])


# --------------------------------------------------------------------------- text


def _peg_text(peg: tuple[int, ...]) -> str:
    return "[" + ", ".join(map(str, peg)) + "]"


def state_text(state: State) -> str:
    """`[[3, 2], [], [1]]`: a state as the prompt and the answers write it."""
    return f"[{_peg_text(state[0])}, {_peg_text(state[1])}, {_peg_text(state[2])}]"


def format_answer(move: Move, next_state: State) -> str:
    """The exact answer text the parser expects for `move` and `next_state`.

    Example:
        >>> print(format_answer((1, 0, 2), ((2,), (), (1,))))
        move = [1, 0, 2]
        next_state = [[2], [], [1]]
    """
    return f"move = [{move[0]}, {move[1]}, {move[2]}]\nnext_state = {state_text(next_state)}"


# Spaces and tabs may pad the tokens; line breaks only separate the two lines.
_S = r"[ \t]*"
_INT = r"(0|[1-9][0-9]*)"
# The padding after the disks belongs to the optional group: two adjacent `[ \t]*` runs
# (around an absent group) backtrack quadratically on a peg of spaces.
_PEG = rf"\[{_S}(?:((?:0|[1-9][0-9]*)(?:{_S},{_S}(?:0|[1-9][0-9]*))*){_S})?\]"
_ANSWER = re.compile(
    rf"move{_S}={_S}\[{_S}{_INT}{_S},{_S}{_INT}{_S},{_S}{_INT}{_S}\]{_S}\r?\n"
    rf"{_S}next_state{_S}={_S}\[{_S}{_PEG}{_S},{_S}{_PEG}{_S},{_S}{_PEG}{_S}\]\s*",
)
_EARLIER_ANSWER = re.compile(r"^[ \t]*(?:move|next_state)[ \t]*[=:]", re.MULTILINE)

_CYCLES = {1: "0 -> 1 -> 2 -> 0", 2: "0 -> 2 -> 1 -> 0"}
_PREVIOUS = re.compile(r"^Previous move: (none|\[(\d+), (\d+), (\d+)\])$", re.MULTILINE)
_CURRENT = re.compile(r"^Current state: (\[.*\])$", re.MULTILINE)


# --------------------------------------------------------------------------- task


class HanoiTask:
    """Towers of Hanoi with `n` disks: `2**n - 1` voted steps, checked against `optimal_moves`.

    Args:
        n: the number of disks, 1 to 64 (the full run is `2**n - 1` steps).

    Example:
        >>> task = HanoiTask(2)
        >>> task.total_steps, task.is_done(((), (), (2, 1)))
        (3, True)
    """

    name = "hanoi"
    action_name = "move"
    """What an action is called in exported logs."""

    def __init__(self, n: int) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= _MAX_DISKS:
            raise ConfigurationError(f"the number of disks must be 1..{_MAX_DISKS}, got {n!r}")
        self.n = n
        self.params: dict[str, Any] = {"disks": n}
        self._goal: State = ((), (), tuple(range(n, 0, -1)))
        self._disks = frozenset(range(1, n + 1))

    @property
    def total_steps(self) -> int:
        """The number of moves of the optimal solution, `2**n - 1`."""
        return int(2**self.n - 1)

    def initial_state(self) -> State:
        return (tuple(range(self.n, 0, -1)), (), ())

    def step_input(self, state: State, previous_action: Move | None, step: int) -> HanoiStep:
        return HanoiStep(state, previous_action, step)

    def is_done(self, state: State) -> bool:
        return len(state[2]) == self.n

    def true_step(self, state: State, previous_action: Move | None) -> StepAnswer:
        """The correct move from `state` by the task's rule, and the state it leads to."""
        move = _strategy_move(state, previous_action, self.n)
        return StepAnswer(move, apply_move(state, move))

    # ------------------------------------------------------------------ prompt

    def prompt(self, step_input: HanoiStep) -> str:
        """The instructions for one move, from the state and the previous move only."""
        return self.prompt_in(step_input, 0)

    def prompt_in(self, step_input: HanoiStep, wording: int) -> str:
        """The same instructions in wording `wording` of `wordings` (0 is `prompt`'s)."""
        previous = step_input.previous_move
        return self.wordings[wording].format(
            n=self.n,
            cycle=_CYCLES[_cycle(self.n)],
            previous="none" if previous is None else self.dump_action(previous),
            state=state_text(step_input.state),
        )

    wordings: tuple[str, ...] = (PROMPT, *PARAPHRASES)
    """The step prompt's templates: `prompt`'s first, then paraphrases (`wordings.py`)."""

    def rotated_prompts(self) -> list[Any]:
        """One prompt builder per wording, for `ChatModelSampler(model, prompt=...)`:
        sample `i` of a step is asked wording `i mod n` (prompt rotation)."""
        return [partial(self.prompt_in, wording=i) for i in range(len(self.wordings))]

    def read_prompt(self, prompt: str) -> tuple[State, Move | None]:
        """Recover `(state, previous_move)` from a prompt built by `prompt` (for simulated
        chat models, which only see the prompt)."""
        prev = _PREVIOUS.search(prompt)
        cur = _CURRENT.search(prompt)
        if prev is None or cur is None:
            raise ValueError("not a Hanoi prompt: no 'Previous move:' or 'Current state:' line")
        previous = (
            None
            if prev.group(1) == "none"
            else (int(prev.group(2)), int(prev.group(3)), int(prev.group(4)))
        )
        state = self._parse_state_text(cur.group(1))
        return state, previous

    def _parse_state_text(self, text: str) -> State:
        answer = self.parse(f"move = [1, 0, 1]\nnext_state = {text}", check_move=False)
        return answer.next_state  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ parser

    def parse(self, output: Any, *, check_move: bool = True) -> StepAnswer:
        """Parse one answer strictly; raise `ValueError` on anything malformed.

        The answer must end with `move = [d, f, t]` and, on the next line,
        `next_state = [[...], [...], [...]]`, with nothing after them. Text before the
        two lines (reasoning) is allowed. Rejected: a missing or reshaped line, numbers
        that are not plain non-negative integers, a disk missing or repeated or out of
        range, a larger disk on a smaller one, pegs outside 0..2 or equal, a moved
        disk that is not on top of its target peg in `next_state`, and an earlier line
        starting `move =` or `next_state =` (a draft or injected second answer).

        Args:
            output: the model's answer: a string or a chat message.
            check_move: also check the move against `next_state`.
        """
        text = output if type(output) is str else _text_of(output)
        at = text.rfind("move")
        # The last `move` must be a word of its own (not `next_move`); anything after
        # the answer block either holds a later `move` or breaks the full match below.
        if at < 0 or (at > 0 and not text[at - 1].isspace()):
            raise ValueError("no 'move = [...]' line at the end of the answer")
        m = _ANSWER.fullmatch(text, at)
        if m is None:
            raise ValueError(
                "the answer does not end with 'move = [d, f, t]' and "
                "'next_state = [[...], [...], [...]]' lines"
            )
        # A draft answer line before the final one means the sample changed its mind
        # (or was told to): the paper's parser would take the last, but such samples
        # are where errors agree, so they never vote.
        if _EARLIER_ANSWER.search(text, 0, text.rfind("\n", 0, at) + 1):
            raise ValueError("the answer has more than one 'move =' or 'next_state =' line")
        g = m.groups()
        move = (int(g[0]), int(g[1]), int(g[2]))
        # The regex admitted only digits, commas and blanks; a table lookup of each
        # number is twice as fast as int() and rejects disks beyond any task's range.
        try:
            state: State = (_disks_of(g[3]), _disks_of(g[4]), _disks_of(g[5]))
        except KeyError as exc:
            raise ValueError(f"next_state names disk {exc.args[0]}, which cannot exist") from None
        n = self.n
        disks = state[0] + state[1] + state[2]
        if len(disks) != n or frozenset(disks) != self._disks:
            raise ValueError(f"next_state must hold each disk 1..{n} exactly once")
        for i, peg in enumerate(state):
            # Disks are distinct here, so "sorted largest first" means strictly decreasing.
            if len(peg) > 1 and tuple(sorted(peg, reverse=True)) != peg:
                raise ValueError(f"peg {i} has a larger disk on a smaller one: {list(peg)}")
        if check_move:
            disk, src, dst = move
            if not 1 <= disk <= n:
                raise ValueError(f"move names disk {disk}; disks are 1..{n}")
            if src > 2 or dst > 2 or src == dst:
                raise ValueError(f"move must go between two different pegs 0..2, got {src}->{dst}")
            if not state[dst] or state[dst][-1] != disk:
                raise ValueError(f"next_state does not have disk {disk} on top of peg {dst}")
        return StepAnswer(move, state)

    # ------------------------------------------------------------------ state I/O

    def state_hash(self, state: State) -> str:
        """A short, process-independent fingerprint of a state for the run log."""
        return _fingerprint(state)

    def dump_state(self, state: State) -> Any:
        return [list(peg) for peg in state]

    def load_state(self, data: Any) -> State:
        pegs = tuple(tuple(int(d) for d in peg) for peg in data)
        if len(pegs) != 3:
            raise ValueError(f"a Hanoi state has three pegs, got {data!r}")
        return (pegs[0], pegs[1], pegs[2])

    def dump_action(self, action: Move) -> str:
        return f"[{action[0]}, {action[1]}, {action[2]}]"

    def load_action(self, data: Any) -> Move | None:
        if data is None:
            return None
        return (int(data[0]), int(data[1]), int(data[2]))

    def __repr__(self) -> str:
        return f"HanoiTask({self.n})"


_DISK_NUMBERS = {str(i): i for i in range(_MAX_DISKS + 1)}
_disk_number = _DISK_NUMBERS.__getitem__


def _disks_of(peg: str | None) -> tuple[int, ...]:
    if not peg:
        return ()
    peg = peg.replace(" ", "")
    if "\t" in peg:
        peg = peg.replace("\t", "")
    return tuple(map(_disk_number, peg.split(",")))


def _text_of(output: Any) -> str:
    if isinstance(output, str):
        return output
    if hasattr(output, "content"):
        from ...sampling import message_text

        return message_text(output)
    raise ValueError(f"expected text or a chat message, got {type(output).__name__}")


def _fingerprint(state: State) -> str:
    # CRC-32 of the pegs as bytes (disks are < 255, 255 separates pegs): about 0.5 us a
    # step, stable across processes (unlike hash()), and plenty to spot a diverging
    # state in an audit.
    packed = bytes(state[0]) + _SEP + bytes(state[1]) + _SEP + bytes(state[2])
    return format(zlib.crc32(packed), "08x")


_SEP = b"\xff"


# --------------------------------------------------------------------------- simulation


def malformed_answers(step_input: HanoiStep, task: HanoiTask) -> list[str]:
    """Broken variants of the correct answer for `step_input`, each one a red flag.

    Used by `simulated_sampler` for malformed samples and by the tests as the
    parser's corpus. Every variant differs from the correct answer in form, not
    only in content, so a strict parser must reject all of them.
    """
    truth = task.true_step(step_input.state, step_input.previous_move)
    move: Move = truth.action
    nxt: State = truth.next_state
    good = format_answer(move, nxt)
    d, f, t = move
    st = state_text(nxt)
    biggest = max(nxt, key=len)
    big_i = nxt.index(biggest)

    def with_peg(i: int, peg: tuple[int, ...]) -> str:
        pegs = list(nxt)
        pegs[i] = peg
        return state_text((pegs[0], pegs[1], pegs[2]))

    missing = with_peg(big_i, biggest[:-1]) if len(biggest) > 1 else "[[], [], []]"
    twice = with_peg(big_i, biggest + (biggest[-1],))
    unordered = (
        with_peg(big_i, tuple(reversed(biggest)))
        if len(biggest) > 1
        else (with_peg(big_i, biggest + (task.n + 1,)))
    )
    return [
        "",
        "I cannot decide on a move.",
        good + "\nI hope that helps!",
        good + "\nmove = [1, 0, 1]",
        good + "```",
        f"move = [{d}, {f}, {t}]",
        f"next_state = {st}",
        f"next_state = {st}\nmove = [{d}, {f}, {t}]",
        f"move: [{d}, {f}, {t}]\nnext_state: {st}",
        f"Move = [{d}, {f}, {t}]\nNext_State = {st}",
        f"move = ({d}, {f}, {t})\nnext_state = {st}",
        f"move = [{d}, {f}]\nnext_state = {st}",
        f"move = [{d}, {f}, {t}, 0]\nnext_state = {st}",
        f"move = [{d}, -{f}, {t}]\nnext_state = {st}",
        f"move = [{d}, {f}.0, {t}]\nnext_state = {st}",
        f"move = [{d}, {f}, {t}] next_state = {st}",
        f"move = [{d}, {f}, {t}]\nnext_state = {missing}",
        f"move = [{d}, {f}, {t}]\nnext_state = {twice}",
        f"move = [{d}, {f}, {t}]\nnext_state = {unordered}",
        f"move = [{d}, {f}, {t}]\nnext_state = {st[:-1]}",
        f"move = [{d}, {f}, {t}]\nnext_state = {st[1:-1]}",
        f"move = [{d}, {f}, {t}]\nnext_state = [{st[1:-1]}, []]",
        f"move = [{d}, {f}, {t}]\nnext_state = {st.replace(', ', '; ')}",
        f'move = [{d}, {f}, {t}]\nnext_state = {{"0": {list(nxt[0])}, "1": {list(nxt[1])}}}',
        f"move = [{d}, {f}, {f}]\nnext_state = {st}",
        f"move = [{d}, {f}, 3]\nnext_state = {st}",
        f"move = [{task.n + 1}, {f}, {t}]\nnext_state = {st}",
        f"move = [{d}, {t}, {f}]\nnext_state = {st}",
        f"move = [0{d}, {f}, {t}]\nnext_state = {st}",
        f"move = [{d}, {f}, {t}]\nnext_state = {st.replace('[', '(').replace(']', ')')}",
        f"move = [{d}, {f}, {t}]\n\nnext_state = {st}",
        f"```\nmove = [{d}, {f}, {t}]\nnext_state = {st}\n```",
        f"next_move = [{d}, {f}, {t}]\nnext_state = {st}",
        f'{{"move": [{d}, {f}, {t}], "next_state": {st}}}',
    ]


def _estimate_output_tokens(text: str) -> int:
    # A linear fit of tiktoken's o200k count over answers of 1 to 20 disks (within
    # -5..+2 tokens of the true count); counting for real would cost ~5 us a sample.
    return max(1, len(text) * 3 // 4 - 7)


def simulated_sampler(
    task: HanoiTask,
    errors: ErrorModel | None = None,
    *,
    model_name: str = "simulated",
) -> SimulatedSampler:
    """A fast `SimulatedSampler` for `task`: right answers from the ground truth, wrong
    ones that still parse, malformed ones that do not.

    Wrong answer `rival` makes another legal move (the typical slip: disk 1 the wrong
    way round, or disk 1 when another disk was due) and reports the state that move
    really leads to, so only the vote can catch it. Malformed answers come from
    `malformed_answers`. Output tokens are a fast estimate of tiktoken's count; input
    tokens are counted once on the first prompt (every prompt is about as long).

    Example:
        >>> import asyncio
        >>> from maker_graph.testing import ErrorModel
        >>> task = HanoiTask(3)
        >>> sampler = simulated_sampler(task, ErrorModel(error_rate=0.0))
        >>> step = task.step_input(task.initial_state(), None, 0)
        >>> print(asyncio.run(sampler.sample(step, 0)).text)
        move = [1, 0, 2]
        next_state = [[3, 2], [], [1]]
    """
    from ...testing import ErrorModel, SimulatedSampler
    from ...tokens import count_tokens

    # One-slot caches keyed by the step input's identity: all samples of a step share
    # the input object, so the answer text is computed once per step (and the parse
    # cache of the voter then hits on the identical string).
    last: list[Any] = [None, ""]

    def answer(step_input: HanoiStep) -> str:
        if step_input is last[0]:
            return str(last[1])
        truth = task.true_step(step_input.state, step_input.previous_move)
        text = format_answer(truth.action, truth.next_state)
        last[0], last[1] = step_input, text
        return text

    def wrong(step_input: HanoiStep, rival: int) -> str:
        return _wrong_answer(task, step_input.state, step_input.previous_move, rival)

    def malform(text: str, die: int) -> str:
        step_input = last[0]
        if not isinstance(step_input, HanoiStep) or text != last[1]:
            return text[: len(text) // 2]
        variants = malformed_answers(step_input, task)
        return variants[die % len(variants)]

    first = task.step_input(task.initial_state(), None, 0)
    return SimulatedSampler(
        answer,
        wrong=wrong,
        errors=errors if errors is not None else ErrorModel(),
        step_key=_step_index,
        malform=malform,
        tokens=_estimate_output_tokens,
        input_tokens=count_tokens(task.prompt(first)),
        model_name=model_name,
    )


def _step_index(step_input: HanoiStep) -> int:
    return step_input.step


def simulated_chat_model(
    task: HanoiTask, errors: ErrorModel | None = None, *, model_name: str = "simulated-chat"
) -> Any:
    """A `SimulatedChatModel` that plays Hanoi from the prompt alone (slower, but a real
    LangChain chat model: use it with `ChatModelSampler(model, prompt=task.prompt)`).

    Its oracle reads the state and previous move back from the prompt; wrong answers
    are other legal moves, as in `simulated_sampler`.

    Example:
        >>> model = simulated_chat_model(HanoiTask(3))
        >>> task = HanoiTask(3)
        >>> print(model.invoke(task.prompt(task.step_input(task.initial_state(), None, 0))).content)
        move = [1, 0, 2]
        next_state = [[3, 2], [], [1]]
    """
    from ...sampling import message_text
    from ...testing import ErrorModel, SimulatedChatModel

    def read(messages: list[Any]) -> tuple[State, Move | None]:
        return task.read_prompt(message_text(messages[-1]))

    def oracle(messages: list[Any]) -> str:
        state, previous = read(messages)
        truth = task.true_step(state, previous)
        return format_answer(truth.action, truth.next_state)

    def wrong(messages: list[Any], rival: int) -> str:
        state, previous = read(messages)
        return _wrong_answer(task, state, previous, rival)

    return SimulatedChatModel(
        oracle=oracle,
        wrong=wrong,
        errors=errors if errors is not None else ErrorModel(),
        model_name=model_name,
    )


def _wrong_answer(task: HanoiTask, state: State, previous: Move | None, rival: int) -> str:
    right = task.true_step(state, previous).action
    options = [m for m in legal_moves(state) if m != right]
    # The classic slips first: disk 1 the wrong way round, then disk 1 moving when a
    # larger disk was due.
    options.sort(key=lambda m: (m[0] != 1, m))
    move = options[rival % len(options)]
    return format_answer(move, apply_move(state, move))
