"""Placeholder: being built."""


def add_arguments(parser):
    pass


def run(args) -> int:
    raise SystemExit("hft-tui: error: 'bench' is not built yet")
