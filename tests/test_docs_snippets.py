"""Every fenced block in README.md and docs/*.md runs as written.

A reader copies a doc's commands and snippets verbatim, so each one is run here
exactly as it stands:

- A fence may be indented (a block inside a list item): the block is read
  without that indent.
- ``python`` blocks run in order in one namespace per doc (a definition, then
  its use), statement by statement; a ``>>>`` block is a doctest. A
  ``print(...)``, or a bare expression that is not a call (``app.invoke(x)["k"]``),
  followed by a comment (on its line, or on the next lines) must produce what the
  comment shows (``...`` matches anything;
  a comment starting ``e.g.`` is an illustration and is not compared). An
  unlabelled or ``text`` block right after a python block (nothing but blank
  lines between) is what that block prints, and is compared too.
- A ``python`` block that is a module's text (it reads ``__file__``, say) has
  ``<!-- run as file: PATH -->`` on the line above its fence: it is written to
  PATH (relative to the repository's root) and run as that file, in a namespace
  of its own, as ``python PATH`` or a server importing it would.
- ``bash``/``sh``/``console`` blocks run command by command in one shell with
  the project's venv activated (a ``console`` block's commands are its ``$``
  lines); a command ending in ``# exit N`` must exit with N, every other with 0.
  ``make demo`` and ``make test`` are not run here: the first is
  test_cli_demo_end_to_end's command at 8 disks, the second is this suite.
- ``yaml`` blocks that are whole specs (a ``name`` and ``nodes``) must
  validate; ``json`` blocks must parse. Fragments, ``text``, ``mermaid`` and
  unlabelled blocks are shown, not run.

Every doc runs in its own temporary directory holding a copy of ``examples/``,
so paths are the ones a reader at the repository's root uses. A block that
cannot run here says so in the doc, visibly: ``<!-- not run: REASON -->`` on
the line above its fence. Blocks in docs this suite's authors do not own that
fail today are listed in KNOWN_FAILING (strict xfail: the entry must go once
the doc is fixed).
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import doctest
import io
import json
import os
import re
import runpy
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tokenize
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from maker_graph.config import load_spec
from maker_graph.registry import register

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# A fence may be indented (a block inside a list item): its lines lose that indent.
FENCE = re.compile(r"^( *)(```+)\s*([\w-]*)\s*$")
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(.+?)\s*-->$")
AS_FILE = re.compile(r"^<!--\s*run as file:\s*(\S+?)\s*-->$")
SHELL = {"bash", "sh", "shell", "console"}
SHOWN = {"", "text", "mermaid", "output"}  # never run: output, diagrams, file listings
NOT_HERE = re.compile(r"^make (demo|test)\b")  # see the module docstring
MAKE_NOT_RUN = (
    "make demo / make test: not run here; test_cli_demo_end_to_end runs the demo's"
    " command at 8 disks, and make test is this suite"
)
EXPECT_EXIT = re.compile(r"#\s*exit (\d+)\b")
BLOCK_TIMEOUT = 120  # seconds for one shell block; each is meant to take a few

# Docs other sessions own, as they are today: doc -> {a string found in exactly one
# of its blocks: what is wrong}. KNOWN_FAILING blocks run and fail (strict xfail: a
# fixed block turns the test red until its entry goes). UNRUNNABLE blocks would
# take minutes, need a real provider or install packages: they are not run until
# the doc says `<!-- not run: ... -->` or makes them small (then the entry goes).
KNOWN_FAILING: dict[str, dict[str, str]] = {
    "docs/choosing-a-model.md": {
        "ProviderOptions(max_tokens=750": "ConfigurationError: openai:... needs OPENAI_API_KEY",
        "maker-graph plan --estimate": "estimate.json comes from a block that is not run",
        "maker-graph plot --run-dir run": "run/ and estimate.json come from blocks not run",
    },
}
UNRUNNABLE: dict[str, dict[str, str]] = {
    "docs/choosing-a-model.md": {
        "--json estimate.json\nhanoi": "a 2,000-step pilot of four models: ~20 s of CPU",
        '"stuck-like=simulated': "a 2,000-step pilot of two models: ~10 s of CPU",
        "--run-dir run --report run/report.json": "the 20-disk run: ~4 minutes",
        "OPENAI_API_KEY": "needs OpenAI and a key",
        "llama_cpp.server": "installs llama-cpp-python and serves a GGUF model",
    },
}


@dataclass(frozen=True)
class Block:
    doc: str  # path relative to the repository
    line: int  # line of the opening fence
    lang: str
    code: str
    not_run: str | None  # the doc's stated reason, if it says the block is not run
    output: str | None = None  # a python block's printed output, shown in the next block
    as_file: str | None = None  # a python block run as this file (a module's text)

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"

    @property
    def runs(self) -> bool:
        if self.lang in SHELL or self.lang == "json":
            return True
        if self.lang == "python":
            return True
        return self.lang == "yaml" and _is_spec(self.code)


def _is_spec(code: str) -> bool:
    return (
        re.search(r"^name:", code, re.M) is not None
        and re.search(r"^nodes:", code, re.M) is not None
    )


def read_blocks(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    found: list[Block] = []
    i = last_end = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = opening[1], opening[2]
        end = i + 1
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        body = [
            line[len(indent) :] if line.startswith(indent) else line.lstrip()
            for line in lines[i + 1 : end]
        ]
        above = next((s.strip() for s in reversed(lines[:i]) if s.strip()), "")
        reason = NOT_RUN.match(above)
        as_file = AS_FILE.match(above)
        found.append(
            Block(
                doc=str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path),
                line=i + 1,
                lang=opening[3].lower(),
                code="\n".join(body) + "\n",
                not_run=reason[1] if reason else None,
                as_file=as_file[1] if as_file else None,
            )
        )
        if (
            found[-1].lang in SHOWN
            and len(found) > 1
            and found[-2].lang == "python"
            and all(not s.strip() for s in lines[last_end + 1 : i])
        ):
            found[-2] = dataclasses.replace(found[-2], output=found[-1].code)
        last_end = end
        i = end + 1
    return found


BLOCKS = [block for doc in DOCS for block in read_blocks(doc)]
RUN = [block for block in BLOCKS if block.runs]


def _listed(listing: dict[str, dict[str, str]], block: Block) -> str | None:
    for marker, why in listing.get(block.doc, {}).items():
        if marker in block.code:
            return why
    return None


# ---------------------------------------------------------------- python blocks


def _comments(code: str) -> dict[int, tuple[str, bool]]:
    """Line -> (comment text, whether code precedes it on that line)."""
    found: dict[int, tuple[str, bool]] = {}
    lines = code.splitlines()
    for token in tokenize.generate_tokens(io.StringIO(code).readline):
        if token.type == tokenize.COMMENT:
            row, col = token.start
            found[row] = (token.string[1:].strip(), bool(lines[row - 1][:col].strip()))
    return found


def _expected(stmt: ast.stmt, comments: dict[int, tuple[str, bool]]) -> str | None:
    """What a bare expression's comment says it gives (None: nothing to compare)."""
    if not isinstance(stmt, ast.Expr) or stmt.end_lineno is None:
        return None
    if isinstance(stmt.value, ast.Call) and not _is_print(stmt):
        return None  # `builder.add_edge(...)  # why`: a call's comment says why, not what
    end = stmt.end_lineno
    trailing = comments.get(end)
    if trailing and trailing[1]:
        parts = [trailing[0]]
    else:
        parts = []
        row = end + 1
        while row in comments and not comments[row][1]:
            parts.append(comments[row][0])
            row += 1
    text = " ".join(parts).strip()
    return None if not text or text.startswith("e.g.") else text


def _matches(expected: str, got: str) -> bool:
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    return doctest.OutputChecker().check_output(expected + "\n", got + "\n", flags)


def _is_print(stmt: ast.stmt) -> bool:
    call = stmt.value if isinstance(stmt, ast.Expr) else None
    return (
        isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "print"
    )


def run_python(block: Block, namespace: dict[str, Any]) -> None:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        _run_statements(block, namespace)
    sys.stdout.write(printed.getvalue())
    if block.output is not None:
        shown = block.output.rstrip("\n")
        got = printed.getvalue().rstrip("\n")
        assert _matches(shown, got), f"{block.id}: the next block shows\n{shown}\nit printed\n{got}"


def run_file(block: Block, root: Path) -> None:
    """Write a module's text where the doc says it lives and run it as that file."""
    assert block.as_file is not None
    path = root / block.as_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(block.code)
    runpy.run_path(str(path), run_name=path.stem)


def _run_statements(block: Block, namespace: dict[str, Any]) -> None:
    if block.code.lstrip().startswith(">>>"):
        test = doctest.DocTestParser().get_doctest(
            block.code, namespace, block.id, block.doc, block.line
        )
        out = io.StringIO()
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        result = runner.run(test, out=out.write, clear_globs=False)
        assert result.failed == 0, out.getvalue()
        return
    tree = ast.parse(block.code, block.id)  # a top-level await is a SyntaxError, as for a reader
    comments = _comments(block.code)
    for stmt in tree.body:
        expected = _expected(stmt, comments)
        where = f"{block.doc}:{block.line + stmt.lineno}"
        if isinstance(stmt, ast.Expr) and not _is_print(stmt):
            code = compile(ast.Expression(stmt.value), where, "eval")
            value = eval(code, namespace)  # noqa: S307 - the doc's own snippet
            got = repr(value)
        else:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(ast.Module([stmt], []), where, "exec"), namespace)  # noqa: S102
            got = out.getvalue().rstrip("\n")
            print(out.getvalue(), end="")
        if expected is not None:
            assert _matches(expected, got), f"{where}: the doc shows {expected!r}, got {got!r}"


# ----------------------------------------------------------------- shell blocks


def commands(block: Block) -> list[str]:
    """The block's commands, continuation lines joined (a console block's `$` lines)."""
    found: list[str] = []
    open_line = False
    for raw in block.code.splitlines():
        line = raw.rstrip()
        if open_line:
            found[-1] += "\n" + line
        elif block.lang == "console":
            if not line.startswith("$ "):
                continue
            found.append(line[2:])
        elif line.strip() and not line.lstrip().startswith("#"):
            found.append(line)
        else:
            continue
        open_line = line.endswith("\\")
    return found


def shell_env() -> dict[str, str]:
    venv_bin = Path(sys.executable).parent  # the venv the suite runs in: "activated"
    return {
        **os.environ,  # keeps conftest's PYTHONPATH: the subprocess network guard
        "PATH": os.pathsep.join([str(venv_bin), os.environ.get("PATH", "")]),
        "VIRTUAL_ENV": str(venv_bin.parent),
        "MPLBACKEND": "Agg",
    }


def run_shell(block: Block, cwd: Path) -> None:
    script = []
    for n, command in enumerate(commands(block), 1):
        first = command.splitlines()[0]
        if NOT_HERE.match(first):
            continue
        want = EXPECT_EXIT.search(command)
        rc = int(want[1]) if want else 0
        script.append(command)
        message = shlex.quote(f"command {n} ({first}) exited with") + ' "$rc", not ' + str(rc)
        script.append(f'rc=$?; if [ "$rc" -ne {rc} ]; then echo {message} >&2; exit 99; fi')
    if not script:
        return  # only `make demo` / `make test` (see the module docstring)
    # A session of its own: on a timeout the whole group goes, not just bash.
    shell = subprocess.Popen(
        ["bash", "-c", "\n".join(script)],
        cwd=cwd,
        env=shell_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = shell.communicate(timeout=BLOCK_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(shell.pid, signal.SIGKILL)
        shell.communicate()
        raise AssertionError(f"{block.id}: still running after {BLOCK_TIMEOUT} s") from None
    assert shell.returncode == 0, f"{block.id}:\n{out[-3000:]}\n{err[-3000:]}"


# ------------------------------------------------------------------- the docs


class DocRun:
    """One doc's blocks, run once and in order; each test reads its block's outcome."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.outcomes: dict[str, str | None] = {}  # block id -> failure (None: it ran)
        self.skipped: dict[str, str] = {}  # block id -> why nothing in it ran
        self.done: set[str] = set()

    def outcome(self, block: Block) -> str | None:
        if block.doc not in self.done:
            self.done.add(block.doc)
            self._run(block.doc)
        return self.outcomes[block.id]

    def _run(self, doc: str) -> None:
        cwd = self.base / doc.replace("/", "_")
        shutil.copytree(
            ROOT / "examples", cwd / "examples", ignore=shutil.ignore_patterns("__pycache__")
        )
        namespace: dict[str, Any] = {"__name__": "__doc__"}
        with register.scoped():  # what a doc registers does not leak into other tests
            try:
                self._run_blocks(doc, cwd, namespace)
            finally:
                # A doc's app keeps its connection for the process's life; here the
                # process goes on, so close what the doc opened (3.13 warns otherwise).
                for value in namespace.values():
                    if isinstance(value, sqlite3.Connection):
                        value.close()

    def _run_blocks(self, doc: str, cwd: Path, namespace: dict[str, Any]) -> None:
        for block in (b for b in RUN if b.doc == doc):
            if block.not_run is not None or _listed(UNRUNNABLE, block):
                self.outcomes[block.id] = None
                continue
            try:
                with contextlib.chdir(cwd):
                    if block.lang == "python" and block.as_file is not None:
                        run_file(block, cwd)
                    elif block.lang == "python":
                        run_python(block, namespace)
                    elif block.lang in SHELL and not any(
                        not NOT_HERE.match(c) for c in commands(block)
                    ):
                        self.skipped[block.id] = MAKE_NOT_RUN
                    elif block.lang in SHELL:
                        run_shell(block, cwd)
                    elif block.lang == "json":
                        json.loads(block.code)
                    else:
                        load_spec(block.code)
            except BaseException as error:  # noqa: BLE001 - reported as the block's failure
                if isinstance(error, KeyboardInterrupt):
                    raise
                self.outcomes[block.id] = "".join(traceback.format_exception(error))[-4000:]
            else:
                self.outcomes[block.id] = None


@pytest.fixture(scope="module")
def doc_run(tmp_path_factory: pytest.TempPathFactory) -> DocRun:
    return DocRun(tmp_path_factory.mktemp("docs"))


def _param(block: Block) -> Any:
    why = _listed(KNOWN_FAILING, block) or _listed(UNRUNNABLE, block)
    marks = [pytest.mark.xfail(strict=True, reason=why)] if why else []
    return pytest.param(block, id=block.id, marks=marks)


@pytest.mark.parametrize("block", [_param(b) for b in RUN])
def test_doc_block_runs(block: Block, doc_run: DocRun) -> None:
    if block.not_run is not None:
        if block.lang == "python":
            ast.parse(block.code, block.id)  # still valid Python (no top-level await)
        pytest.skip(f"the doc says: not run: {block.not_run}")
    unrunnable = _listed(UNRUNNABLE, block)
    if unrunnable:
        pytest.fail(f"not run: {unrunnable}; the doc must say `<!-- not run: ... -->` or shrink it")
    failure = doc_run.outcome(block)
    assert failure is None, failure
    if block.id in doc_run.skipped:
        pytest.skip(doc_run.skipped[block.id])


def test_every_block_is_run_or_says_why() -> None:
    # A block in a language this module does not know would silently never run.
    for block in BLOCKS:
        assert block.runs or block.lang in SHOWN or block.lang == "yaml", block.id


COMMAND = re.compile(
    r"^\s*(\$ )?(\w+=\S+\s+)*(maker-graph|python|pip|cd|make|langgraph|\.venv/bin/)\b", re.M
)
SHOWN_COMMANDS = [b for b in BLOCKS if b.lang in SHOWN and COMMAND.search(b.code)]
# Commands shown in `text` blocks of docs owned elsewhere: doc -> {marker: what to do}.
COMMANDS_IN_TEXT: dict[str, dict[str, str]] = {}


def _shown_param(block: Block) -> Any:
    why = _listed(COMMANDS_IN_TEXT, block)
    marks = [pytest.mark.xfail(strict=True, reason=why)] if why else []
    return pytest.param(block, id=block.id, marks=marks)


@pytest.mark.parametrize("block", [_shown_param(b) for b in SHOWN_COMMANDS])
def test_commands_are_in_shell_blocks(block: Block) -> None:
    # A command in a `text` block would escape this module: it must be a shell block
    # (run here, or saying why not).
    line = COMMAND.search(block.code)
    assert line is None, (
        f"{block.id} shows the command {line and line[0]!r} in a {block.lang!r} block"
    )


def test_known_failing_entries_name_one_block() -> None:
    # An entry whose block changed or now says "not run" is stale: remove it.
    for listing, blocks in ((KNOWN_FAILING, RUN), (UNRUNNABLE, RUN), (COMMANDS_IN_TEXT, BLOCKS)):
        for doc, entries in listing.items():
            for marker in entries:
                hits = [b.id for b in blocks if b.doc == doc and marker in b.code]
                assert len(hits) == 1, f"{doc}: {marker!r} names {hits or 'no block'}"
                block = next(b for b in blocks if b.id == hits[0])
                assert block.not_run is None, f"{block.id} now says why it is not run"


def test_not_run_list_stays_short() -> None:
    skipped = [b.id for b in BLOCKS if b.not_run is not None]
    assert len(skipped) <= 16, skipped  # room for the annotations KNOWN_FAILING asks for


def test_a_wrong_comment_fails() -> None:
    # The comparison bites: a doc whose comment shows another value fails.
    wrong = Block("t.md", 1, "python", "x = 2\nprint(x + 1)  # 4\n", None)
    with pytest.raises(AssertionError, match="shows '4', got '3'"):
        run_python(wrong, {})
    run_python(Block("t.md", 1, "python", "[1, 2] * 2\n# [1, 2, ...]\n", None), {})


def test_a_wrong_output_block_fails(tmp_path: Path) -> None:
    doc = tmp_path / "t.md"
    fences = "```python\nprint(1 + 1)\n```\n\n```text\n3\n```\n"
    doc.write_text(fences + "\n```python\nx = 1\n```\n\nprose\n\n```\n5\n```\n")
    code, _, apart, _ = read_blocks(doc)
    assert (code.output, apart.output) == ("3\n", None)  # prose between: not an output
    with pytest.raises(AssertionError, match="the next block shows"):
        run_python(code, {})


def test_a_block_marked_as_a_file_runs_as_that_file(tmp_path: Path) -> None:
    doc = tmp_path / "t.md"
    code = "from pathlib import Path\nPath(__file__).with_suffix('.ran').write_text(__name__)\n"
    doc.write_text(f"<!-- run as file: pkg/served.py -->\n```python\n{code}```\n")
    (block,) = read_blocks(doc)
    assert block.as_file == "pkg/served.py"
    run_file(block, tmp_path)
    assert (tmp_path / "pkg" / "served.py").read_text() == code
    assert (tmp_path / "pkg" / "served.ran").read_text() == "served"


def test_an_indented_block_is_found_and_dedented(tmp_path: Path) -> None:
    # A block inside a list item is indented; a reader still copies and runs it.
    doc = tmp_path / "t.md"
    doc.write_text("- a list item:\n\n  ```python\n  if True:\n      x = 1\n  ```\n")
    (block,) = read_blocks(doc)
    assert (block.lang, block.code) == ("python", "if True:\n    x = 1\n")
    namespace: dict[str, Any] = {}
    run_python(block, namespace)
    assert namespace["x"] == 1


def test_console_commands_and_exit_codes(tmp_path: Path) -> None:
    code = "$ echo a \\\n    b\na b\n$ sh -c 'exit 3'   # exit 3\n"
    block = Block("t.md", 1, "console", code, None)
    assert commands(block) == ["echo a \\\n    b", "sh -c 'exit 3'   # exit 3"]
    run_shell(block, tmp_path)
    with pytest.raises(AssertionError, match="exited with 3, not 0"):
        run_shell(Block("t.md", 1, "bash", "true\nsh -c 'exit 3'\n", None), tmp_path)


def test_readme_names_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    assert "make demo" in text and "make test" in text
