"""Recursive decomposition: the four roles, the tree driver, budgets, the record, forecasts.

The toy task used here sums the lengths of `+`-separated words: `"ab+cde+f"`
splits into `"ab"` and `"cde+f"` (composition `#1 + #2`), a single word is a
leaf whose answer is its length. Its agents are plain functions or scripted
samplers, so every outcome is exact.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver

from maker_graph.errors import BudgetExhaustedError, ConfigurationError, NoConsensusError
from maker_graph.recursive import (
    Answer,
    ComposeInput,
    Composer,
    DecomposeInput,
    Decomposer,
    Decomposition,
    Discriminator,
    JsonlTreeRecorder,
    MemoryTreeRecorder,
    NodeBudgetExhaustedError,
    Part,
    RecursionPolicy,
    Role,
    Roles,
    SolveInput,
    Solver,
    canonical_decomposition,
    check_decomposition,
    create_composer_graph,
    create_decomposer_graph,
    create_discriminator_graph,
    create_recursive_graph,
    create_solver_graph,
    input_from_messages,
    load_events,
    load_trees,
    solver_prompt,
    structured_parser,
)
from maker_graph.recursive.predict import RoleRates, forecast_tree, forecast_vote, race
from maker_graph.recursive.render import render_mermaid, render_text
from maker_graph.scaling import expected_samples_per_step, p_step
from maker_graph.testing import ScriptedSampler
from maker_graph.vote import VotePolicy

# --------------------------------------------------------------------------- the toy task


def split_words(inp: DecomposeInput) -> str:
    words = inp.problem.split("+")
    if len(words) == 1:
        return json.dumps({"solve_directly": True})
    return json.dumps({"subproblems": [words[0], "+".join(words[1:])], "composition": "#1 + #2"})


def length(inp: SolveInput) -> str:
    return json.dumps({"answer": str(len(inp.problem))})


def add_parts(inp: ComposeInput) -> str:
    return json.dumps({"answer": str(sum(int(p.answer) for p in inp.parts))})


def first(inp: Any) -> str:
    return json.dumps({"choice": 1})


def toy_roles(**overrides: Role) -> Roles:
    roles = {
        "decomposer": Role(model=split_words),
        "discriminator": Role(model=first),
        "solver": Role(model=length),
        "composer": Role(model=add_parts),
    }
    roles.update(overrides)
    return Roles(**roles)


def split(*parts: str, composition: str = "#1 + #2") -> str:
    return json.dumps({"subproblems": list(parts), "composition": composition})


# --------------------------------------------------------------------------- parsers, checks


def test_structured_parser_reads_every_shape_and_rejects_the_rest() -> None:
    parse = structured_parser(Answer)
    assert parse(Answer(answer="1")) == Answer(answer="1")
    assert parse({"answer": "2"}) == Answer(answer="2")
    assert parse('```json\n{"answer": "3"}\n```') == Answer(answer="3")
    assert parse(AIMessage(content='{"answer": "4"}', response_metadata={})) == Answer(answer="4")
    tool = AIMessage(
        content="", tool_calls=[{"name": "Answer", "args": {"answer": "5"}, "id": "c1"}]
    )
    assert parse(tool) == Answer(answer="5")
    for bad in ('{"answer": "6", "why": "because"}', "six", '{"result": "6"}', 6):
        with pytest.raises((ValueError, TypeError)):
            parse(bad)


@pytest.mark.parametrize(
    ("proposal", "reason"),
    [
        (Decomposition(solve_directly=True), None),
        (Decomposition(solve_directly=True, subproblems=["a"]), "subproblems are listed"),
        (Decomposition(subproblems=["a"], composition="#1"), "2 to 3 subproblems"),
        (
            Decomposition(subproblems=["a", "b", "c", "d"], composition="#1+#2+#3+#4"),
            "2 to 3 subproblems",
        ),
        (Decomposition(subproblems=["a", " "], composition="#1 + #2"), "#2 is empty"),
        (Decomposition(subproblems=["A+B", "b"], composition="#1 + #2"), "the problem itself"),
        (Decomposition(subproblems=["a", "b"], composition="#1"), "does not use #2"),
        (Decomposition(subproblems=["a", "b"], composition="#1 + #2 + #3"), "#3, which do not"),
        (Decomposition(subproblems=["a", "b"], composition="#2 * #1"), None),
    ],
)
def test_check_decomposition(proposal: Decomposition, reason: str | None) -> None:
    found = check_decomposition("a+b", proposal, max_fanout=3)
    if reason is None:
        assert found is None
    else:
        assert found is not None and reason in found


def test_default_prompt_carries_the_input_for_the_model_and_back() -> None:
    messages = solver_prompt(guidance="Digits only.")(SolveInput(problem="12 × 34"))
    assert "Digits only." in str(messages[0].content)
    assert input_from_messages(messages, SolveInput) == SolveInput(problem="12 × 34")
    with pytest.raises(ValueError):
        input_from_messages([AIMessage(content="nothing here")], SolveInput)


# --------------------------------------------------------------------------- roles


async def test_decomposer_red_flags_an_invalid_split_and_draws_another() -> None:
    # The first proposal keeps the whole problem as a part (no progress): red-flagged.
    script = ScriptedSampler(
        [
            split("ab+cd", "x"),
            split("ab", "cd"),
            split("ab", "cd"),
            split("AB", " cd "),
        ]
    )
    decomposer = Decomposer(Role(model=script), candidates=3)
    proposals = await decomposer.propose("ab+cd")
    script.assert_all_used()
    draw = proposals.result
    assert draw.samples_drawn == 4 and draw.valid_votes == 3
    assert draw.red_flags == {"invalid_split": 1}
    flagged = draw.samples[0]
    assert flagged.red_flag == "invalid_split" and "the problem itself" in str(
        flagged.red_flag_detail
    )
    # "AB" / " cd " is the same split up to case and spaces: one candidate, three proposers.
    assert proposals.unanimous
    assert proposals.candidates[0].proposers == (1, 2, 3)


async def test_decomposer_keeps_distinct_proposals_in_order() -> None:
    script = ScriptedSampler(
        [split("a", "b+c"), json.dumps({"solve_directly": True}), split("a", "b+c")]
    )
    proposals = await Decomposer(Role(model=script), candidates=3).propose("a+b+c")
    assert [c.proposers for c in proposals.candidates] == [(0, 2), (1,)]
    assert not proposals.unanimous


async def test_discriminator_votes_for_equivalent_candidates_collide() -> None:
    a = Decomposition(subproblems=["ab", "cd"], composition="#1 + #2")
    a_again = Decomposition(subproblems=["AB", "cd "], composition="#1  +  #2")
    b = Decomposition(subproblems=["a", "bcd"], composition="#1 + #2")
    # Votes 1, 2, 3 then 1, 1: keyed by index no answer would lead by 3 after five votes;
    # keyed canonically, candidates 1 and 2 are one answer with 4 votes against 1.
    script = ScriptedSampler(
        ['{"choice": 1}', '{"choice": 2}', '{"choice": 3}', '{"choice": 1}', '{"choice": 1}']
    )
    disc = Discriminator(Role(model=script, policy=VotePolicy(k=3)))
    chosen, vote = await disc.choose("ab+cd", [a, a_again, b])
    script.assert_all_used()
    assert canonical_decomposition(chosen) == canonical_decomposition(a)
    assert sorted(vote.tally.values()) == [1, 4]
    assert vote.samples_drawn == 5


async def test_discriminator_red_flags_a_choice_out_of_range() -> None:
    script = ScriptedSampler(['{"choice": 3}', '{"choice": 1}', '{"choice": 1}'])
    disc = Discriminator(Role(model=script, policy=VotePolicy(k=2)))
    cands = [
        Decomposition(solve_directly=True),
        Decomposition(subproblems=["a", "b"], composition="#1+#2"),
    ]
    chosen, vote = await disc.choose("a+b", cands)
    assert chosen.solve_directly and vote.red_flags == {"invalid_choice": 1}


async def test_solver_and_composer_vote_and_red_flag() -> None:
    solver = Solver(
        Role(
            model=ScriptedSampler(['{"answer": " "}', '{"answer": "7"}', '{"answer": "7"}']),
            policy=VotePolicy(k=2),
        )
    )
    vote = await solver.solve("abcdefg")
    assert vote.winner == Answer(answer="7") and vote.red_flags == {"invalid_answer": 1}
    composer = Composer(Role(model=add_parts, policy=VotePolicy(k=2)))
    parts = [Part(problem="ab", answer="2"), Part(problem="cde", answer="3")]
    assert (await composer.compose("ab+cde", "#1 + #2", parts)).winner.answer == "5"


def test_role_checks_their_configuration() -> None:
    with pytest.raises(ConfigurationError):
        Decomposer(Role(model=split_words), candidates=0)
    with pytest.raises(ConfigurationError):
        Solver(length)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        Roles(
            decomposer=Role(model=split_words),
            discriminator=Role(model=first),
            solver=Role(model=length),
            composer=Role(model=add_parts),
            guidance={"planner": "x"},
        ).build()
    with pytest.raises(ConfigurationError):
        RecursionPolicy(max_depth=-1, candidates=0)


def test_role_sub_graphs_run_alone() -> None:
    d = create_decomposer_graph(Decomposer(Role(model=split_words))).compile()
    out = d.invoke({"problem": "ab+c"})
    assert out["candidates"] == [json.loads(split("ab", "c")) | {"solve_directly": False}]
    disc = create_discriminator_graph(Discriminator(Role(model=first))).compile()
    chosen = disc.invoke({"problem": "ab+c", "candidates": out["candidates"]})
    assert chosen["decomposition"]["subproblems"] == ["ab", "c"]
    solver = create_solver_graph(Solver(Role(model=length))).compile()
    assert solver.invoke({"problem": "abc"})["answer"] == "3"
    composer = create_composer_graph(Composer(Role(model=add_parts))).compile()
    parts = [{"problem": "ab", "answer": "2"}, {"problem": "c", "answer": "1"}]
    assert (
        composer.invoke({"problem": "ab+c", "composition": "#1 + #2", "parts": parts})["answer"]
        == "3"
    )


# --------------------------------------------------------------------------- the driver


def test_tree_with_invoke_and_the_drawn_graph() -> None:
    graph = create_recursive_graph(toy_roles())
    out = graph.compile().invoke({"problem": "ab+cde+f+ghij"})
    assert out["answer"] == "10"
    assert out["stats"]["nodes"] == 7 and out["stats"]["leaves"] == 4
    drawn = graph.compile().get_graph().draw_mermaid()
    for name in ("expand", "decomposer", "discriminator", "solver", "composer", "finish"):
        assert name in drawn


async def test_tree_with_ainvoke_and_a_checkpointer() -> None:
    graph = create_recursive_graph(toy_roles()).compile(checkpointer=InMemorySaver())
    config: Any = {"configurable": {"thread_id": "t1"}}
    out = await graph.ainvoke({"problem": "ab+cde+f"}, config)
    assert out["answer"] == "6"
    state = await graph.aget_state(config)
    assert state.values["nodes"]["0"]["answer"] == "6"


async def test_siblings_of_a_level_run_in_parallel() -> None:
    running = peak = 0

    async def slow_length(inp: SolveInput) -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1
        return length(inp)

    graph = create_recursive_graph(toy_roles(solver=Role(model=slow_length))).compile()
    out = await graph.ainvoke({"problem": "a+bb+ccc+dddd"})
    assert out["answer"] == "10"
    # "ccc" and "dddd" are leaves of the same level: their two votes (3 samples each)
    # are dispatched in one superstep and run at the same time.
    assert peak == 6


def test_depth_limit_solves_without_a_decomposer() -> None:
    recorder = MemoryTreeRecorder()
    graph = create_recursive_graph(
        toy_roles(), policy=RecursionPolicy(max_depth=1), recorder=recorder
    ).compile()
    # "cde+f" at depth 1 goes straight to the solver, which counts all 5 characters.
    assert graph.invoke({"problem": "ab+cde+f"})["answer"] == "7"
    tree = load_events(recorder.events)[0]
    deep = tree.nodes["0.1"]  # "cde+f" at depth 1: solved directly, never split
    assert deep.proposals is None
    assert deep.choice is not None and deep.choice["chosen_by"] == "depth_limit"


def test_disagreeing_proposals_go_to_the_discriminator() -> None:
    def two_minds(inp: DecomposeInput, index: int) -> str:
        words = inp.problem.split("+")
        if len(words) == 1:
            return json.dumps({"solve_directly": True})
        if index % 2:  # the other proposers split at the last '+'
            return split("+".join(words[:-1]), words[-1])
        return split_words(inp)

    recorder = MemoryTreeRecorder()
    roles = toy_roles(decomposer=Role(model=two_minds))
    graph = create_recursive_graph(roles, recorder=recorder).compile()
    out = graph.invoke({"problem": "ab+cde+f"})
    assert out["answer"] == "6"
    assert out["stats"]["discriminator_votes"] >= 1
    root = load_events(recorder.events)[0].nodes["0"]
    assert root.choice is not None and root.choice["chosen_by"] == "vote"
    assert len(root.proposals["candidates"]) == 2  # type: ignore[index]


def test_budget_exhaustion_at_an_inner_node_names_the_node() -> None:
    # The composer cannot agree on "cde+f" (node 0.1): every sample a different answer.
    def stubborn(inp: ComposeInput, index: int) -> str:
        if inp.problem == "cde+f":
            return json.dumps({"answer": str(100 + index)})
        return add_parts(inp)

    recorder = MemoryTreeRecorder()
    roles = toy_roles(composer=Role(model=stubborn))
    policy = RecursionPolicy(max_samples_per_node=12)
    graph = create_recursive_graph(roles, policy=policy, recorder=recorder).compile()
    with pytest.raises(NodeBudgetExhaustedError) as info:
        graph.invoke({"problem": "ab+cde+f"})
    err = info.value
    assert err.node == "0.1" and err.role == "composer" and err.problem == "cde+f"
    assert err.limit == 12 and err.spent == 12
    assert isinstance(err, BudgetExhaustedError)
    assert str(err).startswith("node 0.1 (composer, cde+f): its sample budget is spent")
    assert "max_samples_per_node" in str(err)
    tree = load_events(recorder.events)[0]
    assert tree.done is not None and tree.done["ok"] is False
    assert tree.nodes["0.1"].failure is not None
    # The sibling finished and was recorded; the root was never composed.
    assert tree.nodes["0.0"].answer == "2" and tree.nodes["0"].answer is None


def test_no_consensus_within_a_vote_names_the_node() -> None:
    def scattered(inp: SolveInput, index: int) -> str:
        return json.dumps({"answer": str(index if inp.problem == "cde" else len(inp.problem))})

    roles = toy_roles(solver=Role(model=scattered, policy=VotePolicy(k=2, max_samples=6)))
    graph = create_recursive_graph(roles).compile()
    with pytest.raises(NoConsensusError) as info:
        graph.invoke({"problem": "ab+cde+f"})
    assert "node 0.1.0 (solver, cde)" in str(info.value)
    assert info.value.samples_drawn == 6


def test_tree_size_limit() -> None:
    graph = create_recursive_graph(toy_roles(), policy=RecursionPolicy(max_nodes=4)).compile()
    with pytest.raises(BudgetExhaustedError, match="tree nodes budget spent"):
        graph.invoke({"problem": "a+b+c+d+e"})


# --------------------------------------------------------------------------- the record


def test_jsonl_record_is_appended_and_rendered(tmp_path: Any) -> None:
    with JsonlTreeRecorder(tmp_path, fsync=False) as recorder:
        graph = create_recursive_graph(toy_roles(), recorder=recorder).compile()
        graph.invoke({"problem": "ab+cde+f", "tree_id": "first"})
        graph.invoke({"problem": "x+yy", "tree_id": "second"})
    # A run killed mid-write leaves a torn last line; reading skips it.
    with (tmp_path / "tree.jsonl").open("a") as f:
        f.write('{"event": "node", "tree": "sec')
    trees = load_trees(tmp_path)
    assert [t.id for t in trees] == ["first", "second"]
    first_tree = trees[0]
    assert first_tree.answer == "6" and [n.id for n in first_tree.walk()] == [
        "0",
        "0.0",
        "0.1",
        "0.1.0",
        "0.1.1",
    ]
    text = render_text(first_tree)
    assert "0  ab+cde+f = 6" in text and "decomposer: 3 valid of 3 drawn" in text
    assert "composer: 6" in text
    mermaid = render_mermaid(first_tree)
    assert mermaid.startswith("flowchart TD") and 'n0 -->|"#35;1"| n0_0' in mermaid


# --------------------------------------------------------------------------- forecasts


@pytest.mark.parametrize(("p", "k"), [(0.95, 3), (0.8, 2), (0.7, 4), (0.99, 1)])
def test_race_with_one_rival_is_the_closed_form(p: float, k: int) -> None:
    right, samples = race(p, k, rivals=1)
    assert math.isclose(right, p_step(p, k), rel_tol=1e-9)
    assert math.isclose(samples, expected_samples_per_step(p, k), rel_tol=1e-9)


def test_spread_rivals_are_easier_than_one() -> None:
    one = forecast_vote(RoleRates(wrong=0.05), 3)
    three = forecast_vote(RoleRates(wrong=0.05, rivals=3), 3)
    assert three.error < one.error / 5
    flagged = forecast_vote(RoleRates(wrong=0.05, invalid=0.1), 3)
    assert math.isclose(flagged.samples, flagged.valid_samples / 0.9)


def test_forecast_tree_adds_up_its_votes() -> None:
    perfect = RoleRates(wrong=0.0)
    f = forecast_tree(
        inner=3,
        leaves=4,
        k=3,
        candidates=3,
        decomposer=perfect,
        discriminator=perfect,
        solver=perfect,
        composer=perfect,
    )
    # 7 decomposer draws of 3, 4 solver and 3 composer votes of 3, no discriminator.
    assert f.samples_per_tree == pytest.approx(7 * 3 + 7 * 3)
    assert f.error_per_tree == 0.0 and f.p_all_correct(1000) == 1.0


async def test_a_proposal_that_cannot_be_keyed_is_red_flagged() -> None:
    def strict_key(proposal: Decomposition) -> Any:
        if "?" in proposal.composition:
            raise ValueError("unknown operator '?'")
        return canonical_decomposition(proposal)

    script = ScriptedSampler(
        [split("a", "b", composition="#1 ? #2"), split("a", "b"), split("a", "b")]
    )
    decomposer = Decomposer(Role(model=script), candidates=2, canonical=strict_key)
    proposals = await decomposer.propose("a+b")
    assert proposals.result.red_flags == {"invalid_split": 1}
    assert "unknown operator" in str(proposals.result.samples[0].red_flag_detail)


def test_public_names_of_the_package() -> None:
    import maker_graph.recursive as recursive

    assert recursive.__doc__
    assert len(recursive.__all__) == len(set(recursive.__all__))
    for name in recursive.__all__:
        assert hasattr(recursive, name), name


def test_a_thread_reused_for_a_new_problem_starts_a_new_tree() -> None:
    graph = create_recursive_graph(toy_roles()).compile(checkpointer=InMemorySaver())
    config: Any = {"configurable": {"thread_id": "same"}}
    first_out = graph.invoke({"problem": "ab+cde"}, config)
    second = graph.invoke({"problem": "x+y+z"}, config)
    assert (first_out["answer"], second["answer"]) == ("5", "3")
    assert second["tree_id"] != first_out["tree_id"]
    assert set(second["nodes"]) == {"0", "0.0", "0.1", "0.1.0", "0.1.1"}


async def test_decomposer_escalation_can_supply_the_split() -> None:
    human = Decomposition(subproblems=["a", "b"], composition="#1 + #2")
    role = Role(
        model=lambda inp: "not json",
        escalate=lambda result: human,
        policy=VotePolicy(k=1, max_samples=4, on_no_consensus="escalate"),
    )
    proposals = await Decomposer(role, candidates=2).propose("a+b")
    assert proposals.result.red_flags == {"parse_error": 4}
    assert [c.decomposition for c in proposals.candidates] == [human]


# --------------------------------------------------------------------------- stream events


def _multiplication_graph(**policy: Any) -> Any:
    from maker_graph.tasks.multiplication import (
        RoleErrors,
        multiplication_roles,
        simulated_models,
    )

    roles = multiplication_roles(simulated_models(RoleErrors.uniform(0.0)))
    return create_recursive_graph(roles, policy=RecursionPolicy(max_depth=8, **policy))


def _tree_events(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    by_name: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_name.setdefault(event["event"], []).append(event)
    return by_name


def _check_against_tree(events: list[dict[str, Any]], nodes: dict[str, Any]) -> None:
    from maker_graph.recursive.events import TREE_EVENT_NAMES

    assert {e["event"] for e in events} <= set(TREE_EVENT_NAMES)
    json.dumps(events)  # every payload is JSON as it is
    by = _tree_events(events)
    leaves = {n for n, node in nodes.items() if not node.get("children")}
    inner = set(nodes) - leaves
    proposed = [e["node"] for e in by.get("maker.tree.proposed", [])]
    assert sorted(proposed) == sorted(nodes)  # one per tree node
    for e in by["maker.tree.proposed"]:
        node = nodes[e["node"]]
        assert e["depth"] == node["depth"]
        assert e["parts"] == len(node.get("children") or [])
        assert e["solve_directly"] == (e["node"] in leaves)
    solved = {e["node"]: e for e in by.get("maker.tree.solved", [])}
    composed = {e["node"]: e for e in by.get("maker.tree.composed", [])}
    assert len(by.get("maker.tree.solved", [])) == len(solved) and set(solved) == leaves
    assert len(by.get("maker.tree.composed", [])) == len(composed) and set(composed) == inner
    for node_id, e in {**solved, **composed}.items():
        assert e["answer"] == nodes[node_id]["answer"] and e["samples"] >= 1
    assert "maker.tree.failed" not in by


def test_stream_events_follow_the_tree() -> None:
    from maker_graph.tasks.multiplication import problem_text

    graph = _multiplication_graph().compile()
    problem = problem_text(1234, 5678)
    events = list(graph.stream({"problem": problem}, stream_mode="custom"))
    out = graph.invoke({"problem": problem})
    assert out["answer"] == "7006652"
    nodes = out["nodes"]
    assert len(nodes) > 1  # the 4x4 digits problem is split
    _check_against_tree(events, nodes)
    # Not streamed: the same run, no writer, same result.
    assert graph.invoke({"problem": problem})["nodes"] == nodes


async def test_stream_events_reach_a_parent_graph() -> None:
    from langgraph.graph import END, START, StateGraph
    from typing_extensions import TypedDict

    from maker_graph.tasks.multiplication import problem_text

    class Parent(TypedDict, total=False):
        problem: str
        answer: str | None
        nodes: dict[str, Any]

    parent = StateGraph(Parent)
    parent.add_node("multiply", _multiplication_graph().compile())
    parent.add_edge(START, "multiply")
    parent.add_edge("multiply", END)
    graph = parent.compile()
    inputs = {"problem": problem_text(1234, 5678)}
    seen: list[tuple[tuple[str, ...], dict[str, Any]]] = [
        (namespace, event)
        async for namespace, event in graph.astream(inputs, stream_mode="custom", subgraphs=True)
    ]
    out = await graph.ainvoke(inputs)
    assert out["answer"] == "7006652"
    assert seen and all(ns and ns[0].startswith("multiply") for ns, _ in seen)
    _check_against_tree([event for _, event in seen], out["nodes"])


def test_a_failing_node_streams_a_failed_event() -> None:
    def stubborn(inp: ComposeInput, index: int) -> str:
        if inp.problem == "cde+f":
            return json.dumps({"answer": str(100 + index)})
        return add_parts(inp)

    roles = toy_roles(composer=Role(model=stubborn))
    graph = create_recursive_graph(roles, policy=RecursionPolicy(max_samples_per_node=12)).compile()
    events: list[dict[str, Any]] = []
    with pytest.raises(NodeBudgetExhaustedError):
        for event in graph.stream({"problem": "ab+cde+f"}, stream_mode="custom"):
            events.append(event)
    failed = [e for e in events if e["event"] == "maker.tree.failed"]
    assert len(failed) == 1
    assert failed[0]["node"] == "0.1" and failed[0]["role"] == "composer"
    assert failed[0]["reason"] == "node_budget" and "sample budget" in failed[0]["message"]
    json.dumps(events)
    solved = {e["node"] for e in events if e["event"] == "maker.tree.solved"}
    assert solved == {"0.0", "0.1.0", "0.1.1"}
    assert not [e for e in events if e["event"] == "maker.tree.composed"]


def test_stream_events_at_the_depth_limit_and_after_a_vote() -> None:
    def two_minds(inp: DecomposeInput, index: int) -> str:
        words = inp.problem.split("+")
        if len(words) == 1:
            return json.dumps({"solve_directly": True})
        if index % 2:
            return split("+".join(words[:-1]), words[-1])
        return split_words(inp)

    roles = toy_roles(decomposer=Role(model=two_minds))
    graph = create_recursive_graph(roles, policy=RecursionPolicy(max_depth=1)).compile()
    events = list(graph.stream({"problem": "ab+cde+f"}, stream_mode="custom"))
    nodes = graph.invoke({"problem": "ab+cde+f"})["nodes"]
    _check_against_tree(events, nodes)
    chosen = {e["node"]: e["chosen_by"] for e in events if e["event"] == "maker.tree.proposed"}
    assert chosen["0"] == "vote"
    assert "depth_limit" in {chosen[n] for n in nodes if nodes[n]["depth"] == 1}


def test_a_bound_chat_model_is_a_chat_model_to_the_roles() -> None:
    # bind_tools/with_config wrap the model in a RunnableBinding; a role must still
    # sample it as a chat model (prompt, temperature schedule), not as a plain runnable.
    from maker_graph.recursive import roles
    from maker_graph.testing import SimulatedChatModel

    model = SimulatedChatModel(oracle=lambda messages: "1")
    assert roles._is_chat_model(model.with_config(tags=["solver"]))
    assert roles._is_chat_model([model, model.bind(stop=["\n"])])
    assert not roles._is_chat_model(lambda step_input: "1")
