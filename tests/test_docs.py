"""The commands the docs show exist and compose: every ``make ...`` and ``scripts/...`` command in
README.md, CONTRIBUTING.md, the config comments and the docstrings of scripts/ and tasks/.

What "composes" means for each kind, without running anything heavy:

* ``scripts/train.py ...``: Hydra composes the config from the overrides (in this process, as the
  script would) and the runner's validation accepts it; a sweep (``-m``) is composed for its first
  cell: the first value of each comma list, then the first value of each grid the composed
  experiment sweeps;
* any other script: ``--help`` exits 0 and names every option the docs pass to it;
* ``make TARGET VAR=...``: ``make -n`` knows the target.

Placeholders (``<task>``, ``...``) are left out; ``[...]`` (optional parts) are kept; shell
variables are expanded as the docs' own shell would (``$HOME``, a ``for ... set -- $run`` loop).
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import runpy
import shlex
import subprocess
import sys
from dataclasses import dataclass
from functools import cache

import pytest

from tests.helpers import REPO

MARKDOWN = ["README.md", "CONTRIBUTING.md"]
SCRIPT = re.compile(r"(?:^|[\s(])((?:\.venv/bin/)?(?:python3?\s+)?(?:torchrun\s+(?:--\S+\s+)*)?"
                    r"(?:bash\s+)?scripts/[\w-]+\.(?:py|sh))(.*)")
MAKE = re.compile(r"(?:^|[\s;(])make\s+([a-z][a-z0-9-]*(?:\s+[A-Z_]+=(?:\"[^\"]*\"|\S+))*)")
# The user's own optimiser of the README ("Any optimiser is one config file"), as a user has it.
MY_CONFIG = "_target_: mypackage.MyOptimizer\nlr: 0.01\nmomentum: 0.9\n"
MY_PACKAGE = ("import torch\n\n\nclass MyOptimizer(torch.optim.SGD):\n"
              "    def __init__(self, params, lr=0.01, momentum=0.0):\n"
              "        super().__init__(params, lr=lr, momentum=momentum)\n")


@dataclass(frozen=True)
class Command:
    where: str  # file:line
    text: str   # the command as the docs write it (continuations joined)

    def __str__(self) -> str:
        return f"{self.where}: {self.text}"


def _code_of_markdown(text: str) -> list[tuple[int, str]]:
    """(line number, code) for each line of a fenced block and each inline code span."""
    out, fenced = [], False
    for n, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            out.append((n, line))
        else:
            out += [(n, span) for span in re.findall(r"`([^`]+)`", line)]
    return out


def _code_of_docstring(doc: str, first_line: int) -> list[tuple[int, str]]:
    """Indented example lines and ``inline`` spans of a docstring."""
    out: list[tuple[int, str]] = []
    for n, line in enumerate(doc.splitlines(), first_line):
        stripped = line.strip()
        continued = bool(out) and out[-1][1].endswith("\\")
        if continued or re.match(r"(\.venv/bin/)?(python3?|make|torchrun|bash) |scripts/", stripped):
            out.append((n, stripped))
        else:
            out += [(n, span) for span in re.findall(r"``?([^`]+)``?", line)]
    return out


def _join_continuations(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for n, line in lines:
        if out and out[-1][1].endswith("\\"):
            out[-1] = (out[-1][0], out[-1][1][:-1] + " " + line.strip())
        else:
            out.append((n, line))
    return out


def _expand_loops(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """``for run in "a b" "c d"; do set -- $run`` ... ``done``: one copy of the body per item,
    with $1, $2 ... the words of each item."""
    out: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        n, line = lines[i]
        loop = re.match(r"\s*for (\w+) in (.*); do set -- \$\1\s*$", line)
        if not loop:
            out.append((n, line))
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j][1].strip() == "done")
        for item in shlex.split(loop.group(2)):
            words = item.split()
            for m, body in lines[i + 1:end]:
                out.append((m, re.sub(r"\$(\d)", lambda v, w=words: w[int(v.group(1)) - 1], body)))
        i = end + 1
    return out


def _sources() -> list[tuple[str, list[tuple[int, str]]]]:
    found = []
    for name in MARKDOWN:
        found.append((name, _code_of_markdown((REPO / name).read_text())))
    for path in sorted(REPO.glob("conf/**/*.yaml")):
        lines = [(n, line.split("#", 1)[1].strip())
                 for n, line in enumerate(path.read_text().splitlines(), 1) if "#" in line]
        found.append((str(path.relative_to(REPO)), lines))
    for path in sorted([*REPO.glob("scripts/*.py"), *REPO.glob("tasks/**/*.py")]):
        tree = ast.parse(path.read_text())
        code = []
        for node in [tree, *ast.walk(tree)]:
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node, clean=False)
                if doc:
                    first = node.body[0].lineno
                    code += _code_of_docstring(doc, first)
        found.append((str(path.relative_to(REPO)), code))
    return found


@cache
def documented() -> tuple[list[Command], list[Command]]:
    """(script commands, make commands) of every source, deduplicated, in order."""
    scripts: dict[str, Command] = {}
    makes: dict[str, Command] = {}
    for name, code in _sources():
        for n, line in _expand_loops(_join_continuations(code)):
            line = re.split(r"\s#\s|\s#$", line)[0]  # a shell comment
            for match in SCRIPT.finditer(line):
                text = (match.group(1) + re.split(r"\s(?:;|&&|\|\|?)\s", match.group(2))[0]).strip()
                scripts.setdefault(text, Command(f"{name}:{n}", text))
            for match in MAKE.finditer(line):
                text = " ".join(w for w in match.group(1).split() if not w.endswith(("...", ">")))
                makes.setdefault(text, Command(f"{name}:{n}", text))
    return list(scripts.values()), list(makes.values())


def _arguments(command: Command) -> tuple[str, list[str]]:
    """The script path and its documented arguments, placeholders left out, $HOME expanded."""
    text = command.text.replace("$HOME", "~")
    words = shlex.split(text)
    at = next(i for i, w in enumerate(words) if w.startswith("scripts/"))
    args = []
    for word in words[at + 1:]:
        if word in ("...", "\\") or "<" in word:
            continue
        if word.startswith("[") and word.endswith("]") and "=[" not in word:
            word = word[1:-1]  # an optional part: checked too
        args += word.split("|")[:1]  # a choice (up|down|status): its first option
    return words[at], args


def test_the_docs_show_commands_of_every_kind():
    scripts, makes = documented()
    names = {_arguments(c)[0] for c in scripts}
    assert {"scripts/train.py", "scripts/reproduce.py", "scripts/aggregate.py"} <= names
    assert len([c for c in scripts if "train.py" in c.text]) > 10
    assert {"demo", "test", "bench", "data"} <= {m.text.split()[0] for m in makes}


# -- scripts/train.py: Hydra composition ------------------------------------------------------
def _train_commands() -> list[Command]:
    # `train.py --help` is Hydra's help: test_every_script_answers_help runs it.
    return [c for c in documented()[0]
            if _arguments(c)[0] == "scripts/train.py" and "--help" not in _arguments(c)[1]]


def _first_cell(args: list[str]) -> list[str]:
    """The overrides of a sweep's first cell: the first value of each comma list."""
    out = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and "," in value and not value.startswith("["):
            value = value.split(",")[0]
        out.append(f"{key}{sep}{value}")
    return out


@pytest.fixture
def user_home(tmp_path, monkeypatch):
    """A home with the README's own optimiser config and the package it names."""
    (tmp_path / "my_configs" / "optimizer").mkdir(parents=True)
    (tmp_path / "my_configs" / "optimizer" / "myopt.yaml").write_text(MY_CONFIG)
    (tmp_path / "site" / "mypackage").mkdir(parents=True)
    (tmp_path / "site" / "mypackage" / "__init__.py").write_text(MY_PACKAGE)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return tmp_path


@pytest.mark.parametrize("command", _train_commands(), ids=str)
def test_each_documented_training_command_composes(command, user_home):
    from omegaconf import OmegaConf

    from tasks.runner import validation
    from tasks.runner.cli import compose

    _, args = _arguments(command)
    args = [os.path.expanduser(a.replace("file://~", f"file://{user_home}")) for a in args]
    flags = [a for a in args if a.startswith("-")]
    assert set(flags) <= {"-m", "--multirun"}, f"{command}: flags the test does not know"
    overrides = _first_cell([a for a in args if not a.startswith("-")])
    cfg = compose(*overrides)
    if flags:  # a sweep: its first cell of each grid the composed config sweeps
        given = {o.split("=")[0].lstrip("+") for o in overrides}
        grid = OmegaConf.select(cfg, "hydra.sweeper.grid") or {}
        extra = [f"{k}={str(v).split(',')[0]}" for k, v in grid.items() if k not in given]
        if extra:
            cfg = compose(*overrides, *extra)
    job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    OmegaConf.to_container(job, resolve=True)
    validation.validate(cfg)


# -- every other script: --help, and the options the docs pass ------------------------------
def _scripts() -> list[str]:
    return sorted(str(p.relative_to(REPO)) for p in REPO.glob("scripts/*") if p.suffix in (".py", ".sh"))


def _help(script: str, monkeypatch) -> tuple[int, str]:
    """Exit status and output of ``script --help``. Python scripts run in this process (their
    imports are then paid once, not per script); train.py's help is Hydra's, whose global state
    wants a process of its own, and shell scripts are run by bash."""
    if script.endswith(".sh") or script == "scripts/train.py":
        runner = ["bash"] if script.endswith(".sh") else [sys.executable]
        out = subprocess.run([*runner, script, "--help"], cwd=REPO, capture_output=True,
                             text=True, timeout=120)
        return out.returncode, out.stdout + out.stderr
    monkeypatch.setattr(sys, "argv", [script, "--help"])
    monkeypatch.chdir(REPO)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        try:
            runpy.run_path(str(REPO / script), run_name="__main__")
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
            return code, buffer.getvalue()
        except Exception as err:  # e.g. an import that no longer exists
            return 1, f"{buffer.getvalue()}{type(err).__name__}: {err}"
    return 1, buffer.getvalue() + f"\n{script} --help ran to the end instead of exiting"


def test_every_documented_script_exists():
    missing = [str(c) for c in documented()[0] if not (REPO / _arguments(c)[0]).is_file()]
    assert not missing, missing


@pytest.mark.parametrize("script", _scripts())
def test_every_script_answers_help(script, monkeypatch):
    code, text = _help(script, monkeypatch)
    assert code == 0, f"{script} --help: exit {code}\n{text[-2000:]}"
    for command in documented()[0]:
        name, args = _arguments(command)
        if name != script or name == "scripts/train.py":
            continue
        options = {a.split("=")[0] for a in args if a.startswith("--") and a != "--"}
        unknown = [o for o in options if o not in text]
        assert not unknown, f"{command}: {script} --help does not know {unknown}"


# -- make targets ------------------------------------------------------------------------------
@pytest.mark.parametrize("command", documented()[1], ids=str)
def test_each_documented_make_command_is_a_target(command):
    out = subprocess.run(["make", "-n", *shlex.split(command.text)], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"{command}: {out.stderr[-1000:]}"
