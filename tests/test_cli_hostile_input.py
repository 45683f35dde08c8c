"""Hostile input at the CLI (issue 14): each case is one `error:` line and a non-zero exit,
never a traceback. Specs with huge integers or unsafe `format_text` templates, `--input`
that is too deep or too long, a run directory that cannot be written (new run, --resume,
--fresh), `--report` naming a directory, a PostgreSQL run_id holding NUL.

The CLI is driven through `main()` (its own error handling included), in-process, except
the read-only run directory: root ignores permission bits, so those cases run the CLI in a
child process under an unprivileged uid (`setpriv`) when the tests run as root.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from maker_graph.cli import main
from maker_graph.config import load_spec
from maker_graph.config.registry import registry as default_registry
from maker_graph.errors import ConfigurationError, SpecError

ROOT = Path(__file__).resolve().parents[1]
TRIAGE = ROOT / "examples" / "configs" / "triage.yaml"
NOBODY = 65534


def _main(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["maker-graph", *args])
    with pytest.raises(SystemExit) as info:
        main()
    captured = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 1), captured.err + captured.out


def _one_error_line(code: int, text: str, expected: str) -> None:
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert code != 0, text
    assert "Traceback" not in text, text
    assert len(errors) == 1 and expected in errors[0], text


def _triage() -> dict:  # type: ignore[type-arg]
    spec = yaml.safe_load(TRIAGE.read_text())
    for route in spec.get("routes", []):  # YAML 1.1 reads the key `on` as True
        if True in route:
            route["on"] = route.pop(True)
    return spec  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- specs


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_spec_holding_a_5000_digit_integer_is_one_error_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    suffix: str,
    command: str,
) -> None:
    digits = "9" * 5000
    text = TRIAGE.read_text().replace("    k: 3\n", f"    k: {digits}\n")
    assert digits in text
    if suffix == ".json":  # JSON's own integer reader has the same 4,300-digit limit
        text = json.dumps(_triage()).replace('"k": 3', f'"k": {digits}')
        assert digits in text
    spec = tmp_path / f"big{suffix}"
    spec.write_text(text)
    code, out = _main([command, str(spec)], capsys, monkeypatch)
    _one_error_line(code, out, "invalid graph spec")
    assert "4300" in out or "digits" in out


BAD_TEMPLATES = ["{ticket!r:>99999999}", "{ticket.__class__}", "{ticket"]


def _with_template(tmp_path: Path, template: str) -> Path:
    spec = _triage()
    spec["nodes"]["billing_desk"]["params"]["template"] = template
    path = tmp_path / "tpl.json"
    path.write_text(json.dumps(spec))
    return path


def test_a_node_failing_at_run_time_is_one_error_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Before the CLI caught a node's own failure this was a traceback. `reply` is a
    # state key (so the spec loads) that has no value when billing_desk runs.
    path = _with_template(tmp_path, "Re: {reply}")
    code, out = _main(
        ["run", str(path), "--input", '{"ticket": "I was charged twice"}'], capsys, monkeypatch
    )
    _one_error_line(code, out, "node 'billing_desk' failed: KeyError")


@pytest.mark.parametrize("template", BAD_TEMPLATES)
def test_an_unsafe_format_text_template_is_refused_at_load_time(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    template: str,
) -> None:
    path = _with_template(tmp_path, template)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert "nodes.billing_desk.params" in dict(info.value.problems)
    for command in (["validate", str(path)], ["run", str(path), "--input", '{"ticket": "x"}']):
        code, out = _main(command, capsys, monkeypatch)
        _one_error_line(code, out, "invalid graph spec")
        assert out.count("nodes.billing_desk.params") == 1, out


def test_the_format_text_check_refuses_keys_outside_the_state() -> None:
    entry = default_registry.get("function", "format_text")
    keys = ["ticket", "reply"]
    assert entry.check_params({"template": "{ticket}", "output": "reply"}, keys) is None
    for params, named in [
        ({"template": "{tikcet}", "output": "reply"}, "'tikcet'"),
        ({"template": "{ticket}", "output": "answer"}, "'answer'"),
    ]:
        problem = entry.check_params(params, keys)
        assert problem is not None and named in problem and "not a state key" in problem
    # Without the state keys only the template itself is checked.
    assert entry.check_params({"template": "{tikcet}", "output": "reply"}) is None
    assert "takes no format spec" in str(entry.check_params({"template": "{a:>9}", "output": "b"}))


def test_a_format_text_template_naming_an_undeclared_key_is_refused_by_validate(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = _with_template(tmp_path, "Re: {no_such_key}")
    for command in (["validate", str(path)], ["validate", "--build", str(path)]):
        code, out = _main(command, capsys, monkeypatch)
        _one_error_line(code, out, "invalid graph spec")
        assert "no_such_key" in out, out


# --------------------------------------------------------------------------- --input


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"ticket": ' + "9" * 5000 + "}", "digits"),
    ],
    ids=["100k-deep", "5000-digit-int"],
)
def test_hostile_run_input_is_one_error_line_through_main(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    expected: str,
) -> None:
    (tmp_path / "in.json").write_text(text)
    for given in (f"@{tmp_path / 'in.json'}", text):
        code, out = _main(["run", str(TRIAGE), "--input", given], capsys, monkeypatch)
        _one_error_line(code, out, expected)


# --------------------------------------------------------------------------- run directory


def _as_unprivileged() -> list[str]:
    """A command prefix that runs the child as `nobody` when we are root, else nothing."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:  # pragma: no cover
        pytest.skip("root ignores permission bits and setpriv is not installed")
    prefix = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    # The unprivileged child must be able to read the checkout and its interpreter: a
    # clone in a private directory (mktemp -d is mode 700) is out of its reach.
    probe = subprocess.run(
        [*prefix, sys.executable, "-c", "import maker_graph"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if probe.returncode != 0:
        pytest.skip(
            f"root ignores permission bits, and uid {NOBODY} cannot run {sys.executable} "
            f"with {ROOT} (a private checkout): {probe.stderr.strip()[-200:]}"
        )
    return prefix


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(cwd), "TMPDIR": str(cwd), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [*_as_unprivileged(), sys.executable, "-m", "maker_graph", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _read_only(path: Path) -> None:
    for p in [path, *path.rglob("*")]:
        mode = p.stat().st_mode
        p.chmod(stat.S_IMODE(mode) & ~0o222 | 0o444 | (0o111 if p.is_dir() else 0))


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A temporary directory the unprivileged child can enter (pytest's is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="maker-ro-"))
    path.chmod(0o777)  # the child writes its HOME/TMPDIR here
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("case", ["new", "resume", "fresh"])
def test_a_read_only_run_directory_is_one_error_line(open_tmp: Path, case: str) -> None:
    tmp_path = open_tmp
    parent = tmp_path / "ro"
    parent.mkdir()
    run_dir = parent / "run"
    args = ["hanoi", "--disks", "6", "--no-progress", "--run-dir", str(run_dir)]
    if case != "new":  # a stopped run to resume or wipe, written by us
        done = subprocess.run(
            [sys.executable, "-m", "maker_graph", *args, "--max-total-samples", "20"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert (run_dir / "run.sqlite").exists()
    _read_only(parent)
    try:
        extra = {"new": [], "resume": ["--resume"], "fresh": ["--fresh"]}[case]
        done = _cli([*args, *extra], tmp_path)
    finally:
        for p in [parent, *parent.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
    _one_error_line(done.returncode, done.stderr + done.stdout, "")
    assert "Permission denied" in done.stderr or "read-only" in done.stderr, done.stderr
    if case != "new":  # nothing was deleted or changed
        assert (run_dir / "run.sqlite").exists()


# --------------------------------------------------------------------------- --report


def test_report_naming_a_directory_is_one_error_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "rep").mkdir()
    code, out = _main(
        ["hanoi", "--disks", "3", "--no-progress", "--report", str(tmp_path / "rep")],
        capsys,
        monkeypatch,
    )
    _one_error_line(code, out, "rep")


def test_report_naming_a_directory_is_refused_before_the_run(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "rep").mkdir()
    code, out = _main(
        ["hanoi", "--disks", "3", "--no-progress", "--report", str(tmp_path / "rep")],
        capsys,
        monkeypatch,
    )
    _one_error_line(code, out, "is a directory")
    assert "steps:" not in out  # refused before any step ran


def test_check_output_file_refuses_what_cannot_be_written(tmp_path: Path) -> None:
    import typer

    from maker_graph.cli.app import check_output_file

    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("")
    for bad in (tmp_path / "d", tmp_path / "f" / "r.json", tmp_path / "f" / "x" / "r.json"):
        with pytest.raises(typer.Exit):
            check_output_file(str(bad), "--report")
    check_output_file(str(tmp_path / "r.json"), "--report")  # a new file in a writable dir
    check_output_file(str(tmp_path / "new" / "r.json"), "--report")  # parents are created
    (tmp_path / "old.json").write_text("{}")
    check_output_file(str(tmp_path / "old.json"), "--report")  # an existing file


# --------------------------------------------------------------------------- PostgreSQL


@pytest.mark.parametrize("run_id", ["a%00b", "a%0Ab", "%00"])
def test_a_postgres_run_id_with_control_characters_is_one_error_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    run_id: str,
) -> None:
    # Port 1: refused before any connection is tried (no server needed).
    url = f"postgresql://127.0.0.1:1/db?run_id={run_id}"
    for args in (
        ["hanoi", "--disks", "3", "--no-progress", "--store", url],
        ["log", "export", "--run-dir", url],
    ):
        code, out = _main(args, capsys, monkeypatch)
        _one_error_line(code, out, "run_id must be 1 to 200 printable characters")


def test_a_postgres_run_id_with_nul_is_refused_by_the_run_log() -> None:
    from maker_graph.runlog import open_run_log

    with pytest.raises(ConfigurationError, match="printable"):
        open_run_log("postgresql://127.0.0.1:1/db?run_id=a%00b")
