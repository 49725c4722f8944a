"""Placeholder: being built."""


def add_arguments(parser):
    pass


def run(args) -> int:
    raise SystemExit("hft-tui: error: 'supervisor' is not built yet")
