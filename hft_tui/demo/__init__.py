"""The demo and what is built on it: ``hft-tui --demo``, its lab session, feed and screenshots.

    launch.py        ``hft-tui --demo``: the lab, an attached engine, a feed, the app
    configs.py       configs/demo.toml (the one list of the demo's symbols) and configs made from it
    lab_session.py   a lab with an engine attached: what the app's tests, benchmark and screenshots run on
    walk.py          a seeded random-walk feed into a lab
    screenshots.py   screenshots/*.svg from the real app in the demo (``make screenshots``)

None of these is the app: they drive it.  This module stays light (the CLI
imports it for ``--demo`` only).
"""

from __future__ import annotations


def run(args) -> int:
    """``hft-tui --demo``."""
    from .launch import run_demo

    return run_demo(args)
