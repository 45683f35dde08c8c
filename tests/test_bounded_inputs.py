"""Bounded inputs (issue 14): no model reply or spec pattern takes super-linear time.

- Every built-in parser is linear in the reply: a hypothesis fuzz over hostile shapes
  (long whitespace runs, nested code fences, huge strings) times each parser on the
  same shape at 10 kB and 100 kB and requires the ratio to stay far below quadratic.
- Parsers refuse replies past `MAX_PARSE_CHARS` without reading them.
- Spec regular expressions that nest unbounded quantifiers are refused at load time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maker_graph._bounded import MAX_PARSE_CHARS, nested_quantifier, unfence
from maker_graph.config import load_spec
from maker_graph.config._parsers import build_parser
from maker_graph.config.registry import registry
from maker_graph.config.spec import JsonParser, LabelsParser, RegexParser, TextParser
from maker_graph.errors import SpecError
from maker_graph.records import RawSample, Sample
from maker_graph.recursive.parsers import structured_parser
from maker_graph.recursive.schemas import Answer, Choice, Decomposition
from maker_graph.red_flags import matches
from maker_graph.tasks.addition import LongAdditionTask
from maker_graph.tasks.hanoi import HanoiTask
from maker_graph.tasks.multiplication.notation import parse_composition
from maker_graph.vote import default_parser


def _parsers() -> dict[str, Callable[[Any], Any]]:
    refusal = matches(r"I cannot|as an AI", reason="refusal")

    def config(spec: Any) -> Callable[[Any], Any]:
        return build_parser(spec, node_name="n", registry=registry)[0]

    found: dict[str, Callable[[Any], Any]] = {
        "hanoi-3": HanoiTask(3).parse,
        "default": default_parser,
        "text": config(TextParser(kind="text")),
        "labels": config(LabelsParser(kind="labels", labels=["billing", "bug", "other"])),
        "regex": config(
            RegexParser(
                kind="regex", pattern=r"answer: (-?\d+)", group=1, occurrence="only", convert="int"
            )
        ),
        "json-object": config(
            JsonParser.model_validate(
                {
                    "kind": "json",
                    "schema": {"type": "object", "properties": {"label": {"type": "string"}}},
                }
            )
        ),
        "json-array": config(
            JsonParser.model_validate(
                {"kind": "json", "schema": {"type": "array", "items": {"type": "number"}}}
            )
        ),
        "decomposition": structured_parser(Decomposition),
        "choice": structured_parser(Choice),
        "answer": structured_parser(Answer),
        "addition": LongAdditionTask(5).parse,
        "composition": lambda text: parse_composition(text, 2),
        # Not a parser, but it reads every reply too (triage.yaml's refusal flag).
        "matches-flag": lambda text: refusal(
            Sample(index=0, raw=RawSample(output=text, text=text))
        ),
    }
    for name in registry.names("parser"):
        entry = registry.get("parser", name)
        if not entry.factory:
            found[f"registry:{name}"] = entry.obj
    return found


PARSERS = _parsers()


def _elapsed(parse: Callable[[Any], Any], text: str) -> float:
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        try:
            parse(text)
        except Exception:  # noqa: BLE001, S110 - a refusal is fine; only the time counts
            pass
        best = min(best, time.perf_counter() - start)
    return best


WORST: dict[str, float] = {}
"""Worst seconds per 10 kB seen per parser (printed by the last test, `-s` to see it)."""


def _check_linear(prefix: str, filler: str, suffix: str) -> None:
    def reply(size: int) -> str:
        body = filler * (size // max(len(filler), 1) + 1)
        return prefix + body[:size] + suffix

    small, large = reply(10_000), reply(100_000)
    for name, parse in PARSERS.items():
        t_small, t_large = _elapsed(parse, small), _elapsed(parse, large)
        WORST[name] = max(WORST.get(name, 0.0), t_large / 10)
        # Linear: x10; quadratic: x100. The additive slack absorbs timer noise.
        assert t_large <= 30 * t_small + 0.02, (name, prefix[:20], filler[:20], t_small, t_large)
        assert t_large < 1.0, (name, t_large)


# The reported attack: three backticks, thousands of spaces, a character (cubic before).
@pytest.mark.parametrize(
    ("prefix", "filler", "suffix"),
    [
        ("```", " ", "x"),
        ("```json", " ", "x"),
        ("```json\n", " \n\t", "x```"),
        (" ", "```", "x"),
        ("```", "```json ", "```"),
        ("move = [1, 0, 2]\nnext_state = [[", " ", ""),
        ("answer: ", "1", " answer: 2"),
        ("[", "[", ""),
        ('{"a": ', " ", "}"),
        ("column = 1,", " ", "digit"),
        ("#1 *", " ", "10^"),
    ],
)
def test_every_parser_is_linear_on_known_hostile_shapes(
    prefix: str, filler: str, suffix: str
) -> None:
    _check_linear(prefix, filler, suffix)


_PIECES = st.sampled_from(
    [
        " ",
        "\t",
        "\n",
        "```",
        "```json",
        "json",
        "{",
        "}",
        "[",
        "]",
        '"',
        ",",
        "a",
        "1",
        "move = [",
        "next_state = ",
        "answer: ",
        "\\",
        "\u00a0",
        "column = ",
        "#1",
        "+",
    ]
)


@settings(
    max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    prefix=st.lists(_PIECES, max_size=4).map("".join),
    filler=st.lists(_PIECES, min_size=1, max_size=3).map("".join),
    suffix=st.lists(_PIECES, max_size=4).map("".join),
)
def test_fuzz_every_parser_is_linear_in_the_reply(prefix: str, filler: str, suffix: str) -> None:
    _check_linear(prefix, filler, suffix)


def test_the_fence_attack_is_fast() -> None:
    for parse in (PARSERS["json-object"], PARSERS["answer"]):
        start = time.perf_counter()
        with pytest.raises(ValueError):  # pydantic's ValidationError is a ValueError
            parse("```" + " " * 4000 + "x")
        assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize(
    "text",
    [
        '```json\n{"a": 1}\n```',
        '  ```JSON {"a": 1}```  ',
        '```{"a": 1}```',
        "```json```",
        "``````",
        "```",
        "x```y```",
        "```json\n[1]\n```\n",
    ],
)
def test_unfence_matches_the_old_pattern(text: str) -> None:
    import re

    old = re.compile(r"^\s*```(?:json|JSON)?\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)
    found = old.match(text.strip())
    assert unfence(text) == (found.group(1).strip() if found else None)


def test_parsers_refuse_replies_past_the_cap_without_reading_them() -> None:
    huge = "```json\n" + "[" + "1, " * (MAX_PARSE_CHARS // 3) + "1]\n```"
    for name in ("json-object", "json-array", "regex", "answer"):
        with pytest.raises(ValueError, match="parse limit"):
            PARSERS[name](huge)


@pytest.mark.parametrize("pattern", [r"^(a+)+$", r"(\d+,)*\d+", r"(?:x\s*)*y", r"(a{1,3})+"])
def test_spec_regexes_with_nested_quantifiers_are_refused_at_load_time(pattern: str) -> None:
    spec = {
        "name": "mini",
        "state": {"x": "str", "q": "str"},
        "models": {"m": {"model": "simulated", "oracle": {"answer": "a"}}},
        "nodes": {
            "a": {
                "kind": "maker",
                "model": "m",
                "prompt": "{x}",
                "output": "q",
                "parser": {"kind": "regex", "pattern": pattern},
                "red_flags": [{"kind": "matches", "pattern": "ok"}],
            }
        },
        "entry": "a",
        "finish": ["a"],
    }
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    problems = dict(info.value.problems)
    assert "nodes.a.parser.pattern" in problems, info.value
    assert "exponential" in problems["nodes.a.parser.pattern"]
    spec["nodes"]["a"]["parser"] = {"kind": "regex", "pattern": "(a)"}  # type: ignore[index]
    spec["nodes"]["a"]["red_flags"] = [{"kind": "matches", "pattern": pattern}]  # type: ignore[index]
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    assert "nodes.a.red_flags.0.pattern" in dict(info.value.problems), info.value


@pytest.mark.parametrize(
    "pattern",
    [r"\d+", r"(a|b)+", r"move = (?P<m>\[.*?\])", r"(?>a+)+", r"answer: (-?\d+)", r"(?:ab)+"],
)
def test_safe_patterns_pass_the_check(pattern: str) -> None:
    assert nested_quantifier(pattern) is None


def test_zz_report_worst_case_per_10kb() -> None:
    for name, seconds in sorted(WORST.items(), key=lambda kv: -kv[1]):
        print(f"{name:24s} {seconds * 1000:8.3f} ms per 10 kB (worst, at 100 kB)")


# ------------------------------------------------------------------ user regexes run bounded

# Bounds below are CPU seconds (process_time): the work a pattern costs, not how long a
# loaded machine took to schedule it.
# Patterns the static check lets through (or that reach us through the Python API,
# which has no spec check) but that backtrack on an almost-matching reply with `re`:
# exponential alternation overlap, a nested quantifier via the API, quartic adjacent runs.
_SLOW = [
    (r"^(a|a)+$", "a" * 29 + "!"),
    (r"^(a+)+$", "a" * 29 + "!"),
    (r"\s*\s*\s*\s*x", " " * 300),
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("pattern", "reply"), _SLOW)
def test_the_matches_red_flag_is_bounded_on_backtracking_patterns(pattern: str, reply: str) -> None:
    from maker_graph.records import RawSample, Sample
    from maker_graph.red_flags import matches

    flag = matches(pattern, reason="refusal")
    sample = Sample(index=0, raw=RawSample(output=reply, text=reply), value=reply, key=reply)
    start = time.process_time()
    verdict = flag(sample)
    elapsed = time.process_time() - start
    # Bound: REGEX_TIMEOUT (0.5 s) plus slack; with `re` this takes 14 s to hours.
    assert elapsed < 1.5, elapsed
    # A reply the pattern could not be checked against is not trusted: flagged, and
    # the detail says why. A pattern that finishes (regex's own optimisations) must
    # give the same answer `re` gives, which here is "no match".
    if verdict is not None:
        assert verdict.reason == "refusal" and "took over" in verdict.detail


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("pattern", "reply"), _SLOW)
def test_spec_regex_parsers_are_bounded_on_backtracking_patterns(pattern: str, reply: str) -> None:
    for occurrence in ("first", "only"):
        parse = build_parser(
            RegexParser.model_construct(
                kind="regex",
                pattern=pattern,
                group=0,
                occurrence=occurrence,
                convert="str",
                ignore_case=False,
            ),
            node_name="n",
            registry=registry,
        )[0]
        start = time.process_time()
        with pytest.raises(ValueError):  # no match, or refused after the time bound
            parse(reply)
        assert time.process_time() - start < 1.5


def test_a_pattern_the_spec_check_passes_is_still_bounded_when_loaded() -> None:
    # `(a|a)+` nests nothing, so load_spec accepts it; the run must still be bounded.
    assert nested_quantifier(r"^(a|a)+$") is None
    spec = {
        "name": "mini",
        "state": {"x": "str", "q": "str"},
        "models": {"m": {"model": "simulated", "oracle": {"answer": "a"}}},
        "nodes": {
            "a": {
                "kind": "maker",
                "model": "m",
                "prompt": "{x}",
                "output": "q",
                "parser": {"kind": "regex", "pattern": r"^(a|a)+$"},
            }
        },
        "entry": "a",
        "finish": ["a"],
    }
    node = load_spec(spec).nodes["a"]
    parse = build_parser(node.parser, node_name="a", registry=registry)[0]
    start = time.process_time()
    with pytest.raises(ValueError, match="took over"):
        parse("a" * 29 + "!")
    assert time.process_time() - start < 1.5
    assert parse("aaaa") == "aaaa"  # a reply that matches still parses


def test_bounded_patterns_keep_re_semantics() -> None:
    from maker_graph._bounded_regex import compile_bounded

    cases = [
        (r"answer: (-?\d+)", 0, "x answer: -12 answer: 3"),
        (r"\bI cannot\b", 2, "Sorry, i CANNOT help"),
        (r"^b$", 8, "a\nb\nc"),
        (r"a.b", 16, "a\nb"),
        (r"\w+", 256, "héllo"),
        (r"(?P<n>\d+)\s*$", 0, "1 2 3  "),
    ]
    import re

    for pattern, flags, text in cases:
        ours = [m.group(0) for m in compile_bounded(pattern, flags).findall_matches(text)]
        theirs = [m.group(0) for m in re.finditer(pattern, text, flags)]
        assert ours == theirs, (pattern, ours, theirs)
    with pytest.raises(re.error):
        compile_bounded("(")


def _rules_model(pattern: str, answer: str) -> Any:
    from maker_graph.config.spec import OracleRule, RulesOracle, SimulatedModel

    # model_construct: the load-time check refuses `(a+)+`, the Python API does not.
    rule = OracleRule.model_construct(match=pattern, answer=answer)
    oracle = RulesOracle.model_construct(rules=[rule], default="no")
    return SimulatedModel(model="simulated").model_copy(update={"oracle": oracle})


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("pattern", "prompt"), _SLOW)
def test_simulated_oracle_rules_are_bounded_on_backtracking_patterns(
    pattern: str, prompt: str
) -> None:
    # Oracle rules are spec regexes searched in the prompt (state text); with `re`,
    # `^(a|a)+$` on 29 a's and a '!' takes minutes and holds the event loop.
    from langchain_core.messages import HumanMessage

    from maker_graph.config._models import oracle_function

    oracle = oracle_function(_rules_model(pattern, "yes"), registry=registry)
    start = time.process_time()
    try:
        answer = oracle([HumanMessage(prompt)])
    except ValueError as exc:  # refused after the time bound, naming the rule
        assert "oracle rule 0" in str(exc) and "took over" in str(exc)
    else:  # `regex` finished on its own: it must be `re`'s answer (no match)
        assert answer == "no"
    assert time.process_time() - start < 1.5
    # Groups still expand as `re` expands them, and case is still ignored.
    oracle = oracle_function(_rules_model(r"ticket (\d+)", r"#\1"), registry=registry)
    assert oracle([HumanMessage("TICKET 42 please")]) == "#42"
