"""Placeholder: being built."""


def add_arguments(parser):
    pass


def run(args) -> int:
    raise SystemExit("hft-tui: error: 'simulator' is not built yet")
