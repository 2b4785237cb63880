"""Every `sanji` command has help text."""

from __future__ import annotations

import argparse

from sanji_cli import build_parser


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield path + (name,), helps.get(name)
                yield from _walk(sub, path + (name,))


def test_every_command_has_help() -> None:
    commands = list(_walk(build_parser()))
    assert {c for c, _ in commands} >= {
        ("demo",),
        ("district",),
        ("district", "serve"),
        ("district", "load-demo"),
        ("township",),
        ("kiosk",),
    }
    missing = [" ".join(c) for c, text in commands if not text]
    assert not missing, f"commands without help: {missing}"
