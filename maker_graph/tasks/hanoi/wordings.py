"""The Hanoi step prompt's wordings: the task's own and paraphrases for prompt rotation.

Every wording carries the same facts (pegs, disks, how a state is written, the
rule, the answer's two lines) in other words and another order, so a model that
misreads one wording of a step may read another right. Each ends with the same
two lines, `Previous move:` and `Current state:`, which `HanoiTask.read_prompt`
reads back, and asks for the same two answer lines `HanoiTask.parse` accepts.
Everything that is the same at every step comes first and the step's own state
last, so a provider's prompt cache can serve the whole shared prefix.
"""

from __future__ import annotations

__all__ = ["PARAPHRASES", "PROMPT"]

PROMPT = """\
You are solving the Towers of Hanoi, one move at a time. There are three pegs, \
numbered 0, 1 and 2, and {n} disks numbered 1 (the smallest) to {n} (the largest). \
At the start every disk is on peg 0; the goal is to move them all to peg 2. A disk \
may only be moved from the top of one peg to the top of another, and never onto a \
smaller disk.

A state lists the three pegs, each from its bottom disk to its top disk. For \
example [[3, 2], [], [1]] means disks 3 and 2 are on peg 0 with 2 on top, peg 1 \
is empty and disk 1 is on peg 2.

Follow this rule exactly; it always gives the next move of the shortest solution:
- If the previous move did not move disk 1, or there is no previous move yet, \
move disk 1 to the next peg in the cycle {cycle}.
- If the previous move did move disk 1, make the one legal move that does not \
involve disk 1: of the two pegs that do not hold disk 1, take the smaller top disk \
and put it on the other peg (an empty peg accepts any disk).

Work out the single next move and the state it leads to. End your answer with \
exactly these two lines and nothing after them, where a move is \
[disk, from_peg, to_peg]:
move = [disk, from_peg, to_peg]
next_state = [[...], [...], [...]]

Previous move: {previous}
Current state: {state}
"""
"""The task's own wording (`HanoiTask.prompt`)."""

PARAPHRASES: tuple[str, ...] = (
    """\
Task: give the next move of a Towers of Hanoi puzzle. The puzzle has {n} disks, \
numbered from 1 (smallest) up to {n} (largest), and three pegs called 0, 1 and 2. \
All disks begin on peg 0 and must all end up on peg 2. Only the top disk of a peg \
can move, it goes onto the top of another peg, and it may never sit on a disk \
smaller than itself.

How to choose the move (this rule always yields the shortest solution):
1. When there is no previous move yet, or the previous move moved some disk other \
than disk 1: move disk 1 one step along the cycle {cycle}.
2. When the previous move moved disk 1: leave disk 1 alone. Look at the two pegs \
without disk 1, and move the smaller of their top disks onto the other of those \
two pegs (any disk may go onto an empty peg).

States are written as a list of three pegs, and each peg lists its disks from \
the bottom one up to the top one: [[3, 2], [], [1]] has disk 3 under disk 2 on \
peg 0, nothing on peg 1, and disk 1 on peg 2.

Reply with your reasoning if you like, but your reply must finish with exactly \
these two lines, nothing after them (a move is written [disk, from_peg, to_peg]):
move = [disk, from_peg, to_peg]
next_state = [[...], [...], [...]]

Previous move: {previous}
Current state: {state}
""",
    """\
Towers of Hanoi, {n} disks, pegs 0, 1 and 2. Disk 1 is the smallest and disk {n} \
the largest. Start: all disks on peg 0. Goal: all disks on peg 2. Legal move: lift \
the top disk of one peg and place it on top of another peg, never on a smaller \
disk. Pegs are listed bottom to top, so in [[3, 2], [], [1]] peg 0 holds 3 with 2 \
above it, peg 1 is empty and peg 2 holds disk 1.

You make one move now. Decide it like this, which is the optimal strategy:
- previous move was disk 1: do not touch disk 1; between the other two pegs, move \
the smaller top disk onto the other one (an empty peg takes any disk);
- previous move was another disk, or there is none: disk 1 moves to the next peg \
of the cycle {cycle}.

Then write the state after your move. The last two lines of your answer must be \
exactly these, with a move as [disk, from_peg, to_peg], and nothing may follow:
move = [disk, from_peg, to_peg]
next_state = [[...], [...], [...]]

Previous move: {previous}
Current state: {state}
""",
)
"""Other wordings of `PROMPT`, same facts, other order (`HanoiTask.rotated_prompts`)."""
