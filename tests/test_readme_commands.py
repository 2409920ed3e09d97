"""The README's commands parse: every `vqcodec SUB ...` it writes (fenced shell blocks and inline
prose) names a subcommand that exists and only options that subcommand has; every `make` target and
every project file or folder it names exists. Nothing is run beyond `vqcodec SUB --help`."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cli import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def _shell_blocks() -> list[str]:
    return [body for lang, body in FENCE.findall(README) if lang not in ("python",)]


def _prose() -> str:
    return FENCE.sub("", README)


def _fenced_commands() -> list[str]:
    """One string per command of the fenced shell blocks: comments dropped, indented lines and
    backslash continuations joined to the command above, `a && b` split."""
    out = []
    for body in _shell_blocks():
        cmds: list[str] = []
        for line in body.splitlines():
            code = re.split(r"(?:^|\s)#", line, maxsplit=1)[0].rstrip()
            if not code.strip():
                continue
            if cmds and (line[:1].isspace() or cmds[-1].endswith("\\")):
                cmds[-1] = cmds[-1].rstrip("\\").rstrip() + " " + code.strip()
            else:
                cmds.append(code.strip())
        for c in cmds:
            out.extend(part.strip() for part in c.split("&&"))
    return out


def _inline_commands() -> list[str]:
    spans = (" ".join(s.split()) for s in re.findall(r"`([^`]+)`", _prose()))
    return [s.replace("[", "").replace("]", "") for s in spans if s.startswith("vqcodec ")]


def _invocations() -> list[tuple[str, list[str], str]]:
    """(subcommand, option tokens, the command as written) for every `vqcodec SUB` in the README."""
    found = []
    for cmd in _fenced_commands() + _inline_commands():
        try:
            words = shlex.split(cmd)
        except ValueError:
            words = cmd.split()
        if words and re.fullmatch(r"\w+\$", words[0]):
            words = words[1:]  # a shell prompt (hostA$)
        if len(words) < 2 or not (words[0] == "vqcodec" or words[0].endswith("/vqcodec")):
            continue
        sub, rest = ("", words[1:]) if words[1].startswith("-") else (words[1], words[2:])
        opts = [t.split("=", 1)[0] for t in rest if t.startswith("-") and not re.fullmatch(r"-[\d.:,e-]+", t)]
        found.append((sub, opts, cmd))
    return found


INVOCATIONS = _invocations()


def _option_names(command: click.Command) -> set[str]:
    names = {"--help", "-h"}
    for p in command.params:
        names.update(p.opts)
        names.update(p.secondary_opts)
    return names


def test_readme_has_commands():
    subs = {s for s, _, _ in INVOCATIONS}
    assert len(INVOCATIONS) > 40 and {"simulate", "sweep", "best", "train", "bench"} <= subs


@pytest.mark.parametrize("sub", sorted({s for s, _, _ in INVOCATIONS if s}))
def test_subcommand_help_parses(sub):
    assert sub in main.commands, f"README names `vqcodec {sub}`, which is no command"
    result = CliRunner().invoke(main, [sub, "--help"])
    assert result.exit_code == 0, result.output


def test_every_readme_option_exists():
    bad = []
    for sub, opts, cmd in INVOCATIONS:
        command = main.commands.get(sub) if sub else main
        if command is None:
            continue  # reported by test_subcommand_help_parses
        known = _option_names(command)
        bad += [f"{opt} in: {cmd}" for opt in opts if opt not in known]
    assert not bad, "README options the command lacks:\n" + "\n".join(bad)


def test_make_targets_exist():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([\w-]+):", makefile, re.M))
    named = {m for c in _fenced_commands() for m in re.findall(r"^make ([\w-]+)", c)}
    assert named and named <= targets, named - targets


def test_named_project_paths_exist():
    paths = set(re.findall(r"(?<![\w./])((?:vqcodec|channels|benchmarks|tests)/[\w./-]*[\w/])", README))
    missing = sorted(p for p in paths
                     if "NAME" not in p and not (ROOT / p).exists() and not list(ROOT.glob(p + ".*")))
    assert not missing, f"README names project paths that do not exist: {missing}"
