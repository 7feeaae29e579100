"""`encore --help` and every subcommand's `--help` print ArgumentParser's help and exit 0, and
each subcommand has a one-line description (a help request once surfaced as
`encore: error: CommandError(...)`, exit 1)."""
from __future__ import annotations

import re
import subprocess

import encore_interop as ei


def _help(*args):
    out = subprocess.run([str(ei.encore_bin()), *args, "--help"], capture_output=True, text=True, timeout=30,
                         stdin=subprocess.DEVNULL)
    return out


def _subcommands(text: str) -> dict[str, str]:
    section = text.split("SUBCOMMANDS:", 1)[1].split("\n\n", 1)[0]
    commands = {}
    for line in section.splitlines():
        m = re.match(r"^\s{2}(\S+)(?: \(default\))?\s*(.*)$", line)
        if m:
            commands[m.group(1)] = m.group(2).strip()
    return commands


def test_root_help_lists_every_command_with_a_description():
    out = _help()
    assert out.returncode == 0, out.stderr
    assert "USAGE: encore" in out.stdout, out.stdout
    assert "CommandError" not in out.stdout + out.stderr
    commands = _subcommands(out.stdout)
    for name in ("serve", "decide", "push", "models", "fleet", "snapshot", "store", "bench"):
        assert name in commands, out.stdout
        assert commands[name], f"`encore {name}` has no description in --help:\n{out.stdout}"


def test_each_command_and_subcommand_has_help():
    root = _subcommands(_help().stdout)
    for name in root:
        out = _help(name)
        assert out.returncode == 0, (name, out.stderr)
        assert "USAGE: encore" in out.stdout, (name, out.stdout)
        if "SUBCOMMANDS:" in out.stdout:
            for sub, description in _subcommands(out.stdout).items():
                assert description, f"`encore {name} {sub}` has no description in --help:\n{out.stdout}"
                nested = _help(name, sub)
                assert nested.returncode == 0 and "USAGE: encore" in nested.stdout, (name, sub, nested.stderr)


def test_serve_help_shows_the_defaults_of_its_settings():
    out = _help("serve")
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())  # help text wraps lines
    assert "default: 50051)" in text and "default: 50052)" in text, out.stdout
    assert "docs/configuration.md" in text
