"""Placeholder: being built."""


def add_arguments(parser):
    pass


def run(args) -> int:
    raise SystemExit("hft-tui: error: 'app' is not built yet")
