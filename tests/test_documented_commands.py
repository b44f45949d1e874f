"""Every shell command of the documentation works as written.

The test reads the fenced blocks of README.md and docs/*.md (and the commands in
meltano.yml's comments), so a documented command that breaks fails the suite.

Conventions (docs/design.md, "Documented commands", says the same to writers):

* A ```sh block is run, in document order, with `bash -euo pipefail`, in one temporary
  copy of the project: its .venv and .tools are links to the real ones, its .meltano
  holds links to the installed plugins' venvs and a system database of its own. What
  a command writes (output/, .env, meltano.yml, Meltano's state) stays in the copy;
  processes a block leaves running are killed with it.
* A block whose first line is `# needs: WHAT` needs what the suite does not have (a
  Braze workspace, a warehouse, minutes of a quiet machine). It is not run: `bash -n`
  checks it, and every command it gives Meltano, the tap, the sandbox or the benchmark
  is checked against that program: its subcommands exist and it accepts every option.
  ```cron blocks (the command after the five time fields) and the commands in
  meltano.yml's comments are checked the same way.
* `make test` runs this suite: within it, `make -n test` checks the target instead of
  running it again. `make demo` runs (about 15 s on a quiet machine), on the set-up
  `make test` made (`make -o STAMP`: not redone here).
* The sandbox's documented port, 8979, is replaced by a free port, in the blocks and in
  the copy's meltano.yml and sample_config.json: a sandbox someone already runs does
  not get in the way.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NEEDS = re.compile(r"^#\s*needs:\s*\S")
SANDBOX_PORT = "8979"
BLOCK_TIMEOUT = 300
MELTANO = ".tools/meltano/bin/meltano"
STAMPS = [".venv/.installed", ".tools/meltano/.installed", ".meltano/.plugins-installed"]
# Variables of the caller that would change what the documented commands do.
LEAKY_PREFIXES = ("MELTANO_", "TAP_BRAZE_SERIES_", "TARGET_", "DEMO_", "MAKE", "MFLAGS")
# Programs whose options are checked in blocks that are not run: their --help.
HELP_COMMANDS = {
    ".venv/bin/tap-braze-series": [".venv/bin/tap-braze-series", "--help"],
    ".venv/bin/braze-sandbox": [".venv/bin/braze-sandbox", "--help"],
    "benchmarks/run.py": [".venv/bin/python", "benchmarks/run.py", "--help"],
}


@dataclass(frozen=True)
class Block:
    document: Path
    line: int  # of the opening fence, 1-based
    language: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"

    @property
    def needs(self) -> bool:
        first = self.text.lstrip().splitlines()[0] if self.text.strip() else ""
        return bool(NEEDS.match(first))


def fenced_blocks(document: Path) -> list[Block]:
    blocks: list[Block] = []
    lines = document.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = re.match(r"^```(\S*)", lines[i])
        if not opening:
            i += 1
            continue
        start, body = i, []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        blocks.append(Block(document, start + 1, opening.group(1), "\n".join(body) + "\n"))
        i += 1
    return blocks


def shell_blocks() -> list[Block]:
    return [b for d in DOCUMENTS for b in fenced_blocks(d) if b.language == "sh"]


def checked_commands() -> list[tuple[str, str]]:
    """(where, command) of every documented command that is checked but not run."""
    out: list[tuple[str, str]] = []
    for block in shell_blocks():
        if block.needs:
            out += [(block.where, line) for line in command_lines(block.text)]
    for document in DOCUMENTS:
        for block in fenced_blocks(document):
            if block.language == "cron":
                for line in command_lines(block.text):
                    out.append((block.where, line.split(None, 5)[5]))
    for n, line in enumerate((ROOT / "meltano.yml").read_text().splitlines(), 1):
        comment = re.match(r"^\s*#\s*(\S.*)$", line)
        if comment and comment.group(1).startswith((MELTANO, ".venv/bin/")):
            out.append((f"meltano.yml:{n}", comment.group(1)))
    return out


def command_lines(text: str) -> list[str]:
    """The script's commands, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [
        line.strip()
        for line in joined.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def simple_commands(line: str) -> list[list[str]]:
    """The words of each simple command of a line (redirections left out)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    commands: list[list[str]] = [[]]
    redirect = False
    for token in lexer:
        if redirect:
            redirect = False  # the file (or descriptor) of a redirection
        elif token and set(token) <= set("<>&") and set(token) & set("<>"):
            redirect = True
        elif token and set(token) <= set(";&|()"):
            commands.append([])
        else:
            commands[-1].append(token)
    words = []
    for command in commands:
        while command and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", command[0]):
            command = command[1:]  # VAR=value before the program
        if command:
            words.append(command)
    return words


# --------------------------------------------------------------------------- the copy


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def project_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [name for name in out.split("\0") if name and (ROOT / name).is_file()]


def make_copy(dest: Path, port: int) -> None:
    for name in project_files():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    (dest / ".venv").symlink_to(ROOT / ".venv")
    (dest / ".tools").symlink_to(ROOT / ".tools")
    (dest / ".meltano").mkdir()
    for venv in (ROOT / ".meltano").glob("*/*/venv"):
        plugin = dest / venv.parent.relative_to(ROOT)
        plugin.mkdir(parents=True)
        (plugin / "venv").symlink_to(venv)
    shutil.copy2(ROOT / ".meltano/.plugins-installed", dest / ".meltano/.plugins-installed")
    move_sandbox_port(dest, SANDBOX_PORT, str(port))


def move_sandbox_port(copy: Path, old: str, new: str) -> None:
    """Point the copy's meltano.yml and sample_config.json at the sandbox on port `new`."""
    for name in ("meltano.yml", "sample_config.json"):
        path = copy / name
        path.write_text(path.read_text().replace(f"127.0.0.1:{old}", f"127.0.0.1:{new}"))


def with_fresh_port(block: Block, project: tuple[Path, int, dict]) -> int:
    """A port free now for `block`'s sandbox, the copy's files moved to it.

    Picked per block, not once for all: the blocks run for minutes (`make demo`), in
    which any other process on the machine may take a port that was free at the start.
    """
    copy, port, _ = project
    fresh = free_port()
    move_sandbox_port(copy, str(project_ports.get(copy, port)), str(fresh))
    project_ports[copy] = fresh
    return fresh


project_ports: dict[Path, int] = {}  # the port each copy's files point at now


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, dict]:
    missing = [stamp for stamp in STAMPS if not (ROOT / stamp).exists()]
    if missing:
        pytest.fail(f"set-up not done ({', '.join(missing)} missing): run `make setup`")
    port = free_port()
    copy = tmp_path_factory.mktemp("project")
    make_copy(copy, port)
    env = {k: v for k, v in os.environ.items() if not k.startswith(LEAKY_PREFIXES)}
    env.update({"NO_COLOR": "1", "PYTHONDONTWRITEBYTECODE": "1"})
    return copy, port, env


def runnable(block: Block, port: int) -> str:
    script = re.sub(r"^(\s*)make test\b", r"\1make -n test >/dev/null;", block.text, flags=re.M)
    # The set-up is `make test`'s job, done before the suite: not redone here, even where a
    # rebase or checkout made its stamps look older than their inputs.
    old_stamps = " ".join(f"-o {stamp}" for stamp in STAMPS)
    script = re.sub(r"^(\s*)make demo\b", rf"\1make {old_stamps} demo", script, flags=re.M)
    return script.replace(SANDBOX_PORT, str(port))


def run_block(block: Block, copy: Path, port: int, env: dict) -> str | None:
    """None if the block ran fine, else what went wrong."""
    # The output goes to a file, not a pipe: a block that fails with a server still
    # running in the background (which holds the pipe open) is reported when its
    # shell exits, not when the timeout is up.
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", runnable(block, port)],
            cwd=copy,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=BLOCK_TIMEOUT)
        except subprocess.TimeoutExpired:
            problem: str | None = f"did not finish within {BLOCK_TIMEOUT} s"
        else:
            problem = None if proc.returncode == 0 else f"exited {proc.returncode}"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # whatever the block left running
            proc.wait()
        log.seek(0)
        output = log.read()
    if problem is None:
        return None
    tail = "\n".join(output.splitlines()[-25:])
    return f"{block.where}: {problem}:\n{block.text}--- output (last lines) ---\n{tail}"


@pytest.mark.parametrize(
    "document",
    [d for d in DOCUMENTS if any(b.language == "sh" for b in fenced_blocks(d))],
    ids=lambda d: str(d.relative_to(ROOT)),
)
def test_documented_commands_run(document: Path, project: tuple[Path, int, dict]) -> None:
    copy, _, env = project
    blocks = [b for b in shell_blocks() if b.document == document and not b.needs]
    failures = [
        f for b in blocks if (f := run_block(b, copy, with_fresh_port(b, project), env)) is not None
    ]
    assert not failures, "\n\n".join(failures)


def test_a_block_starting_the_sandbox_on_a_taken_port_fails_at_once_saying_why(
    project: tuple[Path, int, dict],
) -> None:
    copy, _, env = project
    blocks = [b for b in shell_blocks() if not b.needs and "braze-sandbox --port" in b.text]
    assert len(blocks) >= 3, [b.where for b in blocks]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for block in blocks:
            # What an earlier run left: the wait must not take it for this sandbox's line.
            (copy / "output").mkdir(exist_ok=True)
            (copy / "output/sandbox.log").write_text("Braze sandbox listening on (stale)\n")
            started = time.monotonic()
            problem = run_block(block, copy, port, env)
            took = time.monotonic() - started
            assert problem is not None, f"{block.where}: ran with its port taken"
            assert "Address already in use" in problem, problem
            assert took < 15, f"{block.where}: took {took:.1f} s to give up"


# ------------------------------------------------------------- checked, not run


MELTANO_CHECK = r"""
import json, sys
import click
from meltano.cli import cli

def options(cmd):
    return {o: p for p in cmd.params for o in (*p.opts, *p.secondary_opts)}

def check(words):
    ctx = click.Context(cli, info_name="meltano")
    cmd, path, i = cli, ["meltano"], 0
    while i < len(words):
        word = words[i]
        i += 1
        if word.startswith("-"):
            name, _, value = word.partition("=")
            known = options(cmd)
            if name not in known and name != "--help":
                return f"`{' '.join(path)}` has no option {name}"
            param = known.get(name)
            if param is not None and not param.is_flag and not value:
                i += 1  # the option's value
            continue
        if isinstance(cmd, click.Group):
            sub = cmd.get_command(ctx, word)
            if sub is None:
                names = ", ".join(cmd.list_commands(ctx))
                return f"`{' '.join(path)}` has no command {word!r} (it has: {names})"
            cmd, path = sub, [*path, word]
    return None

print(json.dumps([check(words) for words in json.loads(sys.argv[1])]))
"""


def program_options(command: list[str]) -> set[str]:
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"{' '.join(command)} failed: {out.stderr[-500:]}"
    return set(re.findall(r"(?<![\w-])--[A-Za-z][\w-]*", out.stdout))


def test_documented_commands_that_are_not_run_are_valid() -> None:
    problems: list[str] = []
    for block in shell_blocks():
        if block.needs:
            syntax = subprocess.run(
                ["bash", "-n"], input=block.text, capture_output=True, text=True
            )
            if syntax.returncode != 0:
                problems.append(f"{block.where}: bash -n: {syntax.stderr.strip()}")
    meltano_calls: list[tuple[str, list[str]]] = []
    other_calls: list[tuple[str, str, list[str]]] = []
    for where, line in checked_commands():
        syntax = subprocess.run(["bash", "-n", "-c", line], capture_output=True, text=True)
        if syntax.returncode != 0:
            problems.append(f"{where}: bash -n: {syntax.stderr.strip()}")
            continue
        for words in simple_commands(line):
            program, args = words[0], words[1:]
            if program == "meltano" or program.endswith("/meltano"):
                if program != MELTANO:
                    problems.append(f"{where}: call Meltano as {MELTANO}: {line}")
                meltano_calls.append((where, args))
            elif program == ".venv/bin/python" and args and args[0] in HELP_COMMANDS:
                other_calls.append((where, args[0], args[1:]))
            elif program in HELP_COMMANDS:
                other_calls.append((where, program, args))
    assert meltano_calls, "no Meltano command is checked: the convention is not applied"
    results = json.loads(
        subprocess.run(
            [
                str(ROOT / ".tools/meltano/bin/python"),
                "-c",
                MELTANO_CHECK,
                json.dumps([args for _, args in meltano_calls]),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout
    )
    for (where, args), result in zip(meltano_calls, results, strict=True):
        if result:
            problems.append(f"{where}: {MELTANO} {shlex.join(args)}: {result}")
    helps: dict[str, set[str]] = {}
    for where, program, args in other_calls:
        known = helps.setdefault(program, program_options(HELP_COMMANDS[program]))
        for arg in args:
            name = arg.partition("=")[0]
            if arg.startswith("--") and name not in known:
                problems.append(f"{where}: {program} has no option {name}")
    assert not problems, "\n".join(problems)


def test_the_conventions_hold() -> None:
    """What the two tests above rely on: they would pass vacuously otherwise."""
    blocks = shell_blocks()
    run = [b for b in blocks if not b.needs]
    assert any("make demo" in b.text for b in run), "`make demo` must be a documented, run block"
    assert any("braze-sandbox" in b.text for b in run)
    assert any(b.needs for b in blocks)
    for document in DOCUMENTS:
        for block in fenced_blocks(document):
            assert block.language, f"{block.where}: a fenced block needs a language (sh, text, ...)"
            if block.language in ("console", "shell", "bash"):
                pytest.fail(f"{block.where}: write shell blocks as ```sh, so that they are run")
