"""``hft-tui``: the one entry point.

    hft-tui [--demo] [--iface IFACE]         the full-screen app
    hft-tui engine attach|status|set|set-engine|remove|reset-seq|reset-channel|kill|resume|detach|run
    hft-tui lab up|down|status|feed
    hft-tui journal tail|export|verify
    hft-tui backtest CAPTURE --config CFG     a capture through the engine's own program
    hft-tui replay CAPTURE                   a capture played into the lab
    hft-tui bench

Every failure is one line on stderr and a non-zero exit code; no traceback
reaches a user.  Verbs whose work lives in another module (the app, the
simulator, the supervisor, the journal, the benchmark) are imported only
when used, so a broken optional piece never stops ``engine kill``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import sys

from . import __version__
from .errors import HftError

EXIT_ERROR = 1
EXIT_USAGE = 2


def _iface_arg(p: argparse.ArgumentParser, positional: bool = True) -> None:
    help_ = "interface of the engine (may be left out when one engine is attached)"
    if positional:
        p.add_argument("iface", nargs="?", help=help_)
    else:
        p.add_argument("--iface", "-i", help=help_)


def _deadman_ms(text: str) -> int:
    from .config import parse_deadman_ms
    from .errors import ConfigError

    try:
        return parse_deadman_ms(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _lab_number(text: str) -> int:
    from .lab import lab_number_arg

    return lab_number_arg(text)


def _plugin(module: str):
    return importlib.import_module(f"hft_tui.{module}")


# Plugins that failed to import: the verb reports it when used, and every
# other verb (engine kill above all) keeps working.
_BROKEN_PLUGINS: dict[str, str] = {}


def _add_plugin_arguments(module: str, parser: argparse.ArgumentParser) -> None:
    try:
        _plugin(module).add_arguments(parser)
    except Exception as exc:
        _BROKEN_PLUGINS[module] = f"{type(exc).__name__}: {exc}"
        parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def _run_plugin(module: str, args) -> int:
    if module in _BROKEN_PLUGINS:
        print(f"hft-tui: error: '{module}' cannot start ({_BROKEN_PLUGINS[module]})", file=sys.stderr)
        return EXIT_ERROR
    return _plugin(module).run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hft-tui",
        description="Tick-to-order trading engine in the XDP hook, and its terminal UI.",
    )
    parser.add_argument("--version", action="version", version=f"hft-tui {__version__}")
    parser.add_argument("--demo", action="store_true", help="open the app on the lab with the simulator trading")
    parser.add_argument(
        "--replay",
        metavar="CAPTURE",
        help="with --demo: the capture, looping, is the feed (no --config: one made from it)",
    )
    parser.add_argument(
        "--format",
        choices=("hft1", "iex-tops", "iex-deep", "itch"),
        help="with --demo: the feed the simulator sends and the engine reads (default hft1)",
    )
    parser.add_argument("--config", help="TOML config used when the app attaches an engine")
    parser.add_argument("--mode", choices=("native", "generic"), help="XDP mode when the app attaches")
    parser.add_argument("--poll-hz", type=float, default=10.0, help="map polling rate of the app (default 10)")
    parser.add_argument("--iface", "-i", dest="app_iface", metavar="IFACE", help="interface to select in the app")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    # -- engine ---------------------------------------------------------
    eng = sub.add_parser("engine", help="attach, control and inspect the kernel engine")
    esub = eng.add_subparsers(dest="verb", metavar="VERB", required=True)

    p = esub.add_parser("attach", help="compile, load and attach the engine to an interface")
    p.add_argument("iface")
    p.add_argument("--mode", choices=("native", "generic"), help="XDP mode (default: the config's, native)")
    p.add_argument("--config", help="TOML config (default: built-in defaults, no symbols)")
    p.add_argument("--force", action="store_true", help="replace another XDP program on the interface")
    p.add_argument(
        "--deadman",
        type=_deadman_ms,
        metavar="MS",
        help="arm the dead-man switch now with this deadline (100..3600000 ms)",
    )

    p = esub.add_parser("status", help="engine state, counters and per-symbol stats")
    _iface_arg(p)
    p.add_argument("--json", action="store_true", help="one JSON object")

    p = esub.add_parser("set", help="add a symbol or change its parameters (TOML keys and units)")
    p.add_argument("symbol")
    p.add_argument("assignments", nargs="+", metavar="key=value")
    _iface_arg(p, positional=False)

    p = esub.add_parser("set-engine", help="change engine-wide settings (feed_port, limits, ...)")
    p.add_argument("assignments", nargs="+", metavar="key=value")
    _iface_arg(p, positional=False)

    p = esub.add_parser("remove", help="remove a symbol")
    p.add_argument("symbol")
    _iface_arg(p, positional=False)

    p = esub.add_parser(
        "reset-seq",
        help="reset a symbol's sequence: its next update sets it, whatever it is (after a refused jump), "
        "and its next trading status applies whatever its sequence",
    )
    p.add_argument("symbol")
    _iface_arg(p, positional=False)

    p = esub.add_parser(
        "reset-channel",
        help="forget a feed channel's sequence (after an outage longer than max_seq_jump): its next packet sets it",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--channel",
        metavar="ID",
        help="the channel (engine status lists them: IEX SESSION/CHANNEL, MoldUDP64 the session)",
    )
    which.add_argument("--all", action="store_true", help="every channel of the engine")
    _iface_arg(p, positional=False)

    for verb, text in (
        ("kill", "stop all trading at once (the kernel kill switch)"),
        ("resume", "clear the kill switch"),
        ("detach", "detach the engine and remove its pins"),
    ):
        p = esub.add_parser(verb, help=text)
        _iface_arg(p)

    p = esub.add_parser("run", help="supervise an engine in the foreground (heartbeat, journal, alerts)")
    _add_plugin_arguments("supervisor", p)

    # -- lab ------------------------------------------------------------
    lab = sub.add_parser("lab", help="the one-machine exchange lab (netns + veth)")
    lsub = lab.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb, text in (
        ("up", "create the lab namespace and veth pair"),
        ("down", "remove the lab and everything in it"),
        ("status", "the lab's interfaces and addresses"),
    ):
        p = lsub.add_parser(verb, help=text)
        p.add_argument(
            "--lab",
            type=_lab_number,
            metavar="N",
            help="numbered lab N: namespace hft-lab-N, 198.18.N.0/24 (default: the demo lab)",
        )
        if verb == "status":
            p.add_argument("--json", action="store_true")
    p = lsub.add_parser("feed", help="run the exchange simulator in the lab")
    _add_plugin_arguments("simulator", p)

    # -- journal --------------------------------------------------------
    jr = sub.add_parser("journal", help="the order journal")
    _add_plugin_arguments("journal_cli", jr)

    # -- bench ----------------------------------------------------------
    bn = sub.add_parser("bench", help="latency benchmark: engine vs bots vs bare reflector")
    _add_plugin_arguments("bench", bn)

    # -- recorded market data (issue 12) ----------------------------------
    bt = sub.add_parser("backtest", help="run a capture through the engine's own program (BPF_PROG_TEST_RUN)")
    _add_plugin_arguments("backtest.cli", bt)
    rp = sub.add_parser("replay", help="play a capture into the lab and check the engine's orders")
    _add_plugin_arguments("replay.cli", rp)
    return parser


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, sort_keys=False))


def cmd_engine(args) -> int:
    from . import engine, status
    from .config import default_config, load_config, parse_assignments
    from .symbol import Symbol

    if args.verb == "attach":
        config = load_config(args.config) if args.config else default_config()
        rec = engine.attach(
            args.iface, config, mode=args.mode, force=args.force, deadman_ms=args.deadman, config_path=args.config
        )
        supervised = f", dead-man {args.deadman} ms armed" if args.deadman else ", unsupervised (no dead-man switch)"
        print(
            f"attached to {rec.iface} in {rec.mode} mode, program id {rec.prog_id}, "
            f"{len(config.symbols)} symbol(s){supervised}"
        )
        print(status.feed_line(rec.feed, config.engine.feed_port, rec.feed_addr, rec.feed_sources))
        print(status.gateway_line(rec.gateway))
        if rec.open_feed:
            print(f"hft-tui: warning: {status.OPEN_FEED}", file=sys.stderr)
        _journal_cli_change(rec.iface, "attach", {**rec.attach_detail(), "deadman_ms": args.deadman})
        return 0
    if args.verb == "detach":
        for line in engine.detach(engine.resolve_iface(args.iface)):
            print(line)
        return 0
    if args.verb == "run":
        return _run_plugin("supervisor", args)
    if args.verb == "kill":
        # Through the kill switch's own pin: works even on an engine of another hft-tui version.
        iface = engine.resolve_iface(args.iface)
        engine.kill_pinned(iface)
        print(f"KILLED: {iface} sends no orders until 'hft-tui engine resume'")
        _journal_cli_change(iface, "kill", {"state": "operator"})
        return 0

    with engine.open_engine(getattr(args, "iface", None)) as h:
        if args.verb == "status":
            st = status.status_dict(h)
            if args.json:
                _print_json(st)
            else:
                print(status.status_text(st))
        elif args.verb == "set":
            values = parse_assignments(args.assignments)
            p = h.set_symbol(Symbol(args.symbol), values)
            print(f"{args.symbol}: " + " ".join(f"{k}={v}" for k, v in p.to_toml_values().items()))
            _journal_cli_change(h.iface, "symbol_config", {"symbol": args.symbol, **values}, handle=h)
        elif args.verb == "set-engine":
            values = parse_assignments(args.assignments)
            engine_p = h.set_engine(values)
            print(" ".join(f"{k}={v}" for k, v in engine_p.to_toml_values().items()))
            _journal_cli_change(h.iface, "engine_config", values, handle=h)
        elif args.verb == "reset-seq":
            name = Symbol(args.symbol)
            was = h.reset_seq(name)
            print(f"{name}: sequence reset (it was {was:,}): the next update sets it")
            _journal_cli_change(h.iface, "reset_seq", {"symbol": name, "last_seq": was}, handle=h)
        elif args.verb == "reset-channel":
            for ch in h.reset_channel(None if args.all else args.channel):
                print(
                    f"channel {ch.id}: sequence forgotten (next seq was {ch.next_seq:,}, {ch.seq_jumps:,} packets "
                    "refused beyond max_seq_jump): its next packet sets it"
                )
                _journal_cli_change(
                    h.iface,
                    "reset_channel",
                    {"channel": ch.id, "next_seq": ch.next_seq, "seq_jumps": ch.seq_jumps},
                    handle=h,
                )
        elif args.verb == "remove":
            h.remove_symbol(Symbol(args.symbol))
            print(f"removed {args.symbol}")
            _journal_cli_change(h.iface, "symbol_remove", {"symbol": args.symbol}, handle=h)
        elif args.verb == "resume":
            h.resume()
            dm = status.status_dict(h)["deadman"]
            if dm["armed"] and not dm["supervised"]:
                print(
                    f"resumed: the kill switch of {h.iface} is off, but the dead-man switch has expired "
                    "(no controller beats): no order leaves until a controller starts"
                )
            else:
                print(f"resumed: {h.iface} trades again")
            _journal_cli_change(h.iface, "resume", {}, handle=h)
    return 0


def _journal_cli_change(iface: str, kind: str, detail: dict, handle=None) -> None:
    """The journal records every attach and change with the program hash and
    config version.  A running controller journals what it sees itself; with
    none, the command does.  The change is made either way: a journal that
    cannot be written is a warning here, not a failure of the change."""
    from . import engine
    from .locks import controller_pid

    if controller_pid(iface) is not None:
        return
    try:
        from .journal.store import record_cli_change

        with contextlib.ExitStack() as stack:
            h = handle or stack.enter_context(engine.EngineHandle(iface))
            version = h.maps.read_global().config_version
            prog_id, attached_at = h.identity()
            program_hash = h.record.program_hash if h.record else None
        record_cli_change(
            iface,
            kind,
            detail,
            program_hash=program_hash,
            prog_id=prog_id,
            attached_at=attached_at,
            config_version=version,
        )
    except Exception as exc:
        print(f"hft-tui: warning: {kind} not journaled: {exc}", file=sys.stderr)


def cmd_lab(args) -> int:
    from . import lab

    if args.verb == "feed":
        return _run_plugin("simulator", args)
    which = lab.Lab.numbered(args.lab) if args.lab else lab.DEFAULT_LAB
    if args.verb == "up":
        st = lab.up(which)
        print(
            f"lab up: {st.engine_iface} {st.engine_ip} <-> {st.exchange_iface} {st.exchange_ip} "
            f"in namespace {st.namespace}"
        )
        if st.gateway is not None:
            print(f"the lab's order gateway, for the engine's config:\n{st.gateway.toml()}")
    elif args.verb == "down":
        for line in lab.down(which):
            print(line)
    elif args.verb == "status":
        st = lab.status(which)
        if args.json:
            _print_json(st.as_dict())
        else:
            state = "up" if st.up else "down"
            print(
                f"lab {state}: namespace {st.namespace}, engine {st.engine_iface} {st.engine_ip} "
                f"{st.engine_mac or '-'}, exchange {st.exchange_iface} {st.exchange_ip} "
                f"{st.exchange_mac or '-'}, engine attached: {st.engine_attached}"
            )
            if st.gateway is not None:
                print(f"order gateway {st.gateway.ip}:{st.gateway.port} {st.gateway.mac}")
    return 0


def _refuse_untrusted_code(args) -> None:
    """As root, the code about to run and the config given must be root's alone (preflight.py)."""
    if os.geteuid() != 0:
        return
    from . import paths
    from .preflight import require_trusted_code

    configs = [args.config] if getattr(args, "config", None) else []
    if getattr(args, "demo", False) and not configs:
        configs.append(paths.DEMO_CONFIG)
    require_trusted_code(configs)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help, or a usage error already printed
        return int(exc.code or 0)
    try:
        _refuse_untrusted_code(args)
        if args.command == "engine":
            return cmd_engine(args)
        if args.command == "lab":
            return cmd_lab(args)
        if args.command == "journal":
            return _run_plugin("journal_cli", args)
        if args.command == "bench":
            return _run_plugin("bench", args)
        if args.command in ("backtest", "replay"):
            return _run_plugin(f"{args.command}.cli", args)
        if (args.replay or args.format) and not args.demo:
            raise HftError("--replay and --format go with --demo")
        if args.replay and args.format not in (None, "hft1"):
            raise HftError("--format and --replay: a replay's feed is the capture's")
        if args.demo:
            return _run_plugin("demo", args)  # the demo runs the app; the app knows nothing of it
        return _run_plugin("app", args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `hft-tui engine status | head`: the reader left; not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except HftError as exc:
        print(f"hft-tui: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except PermissionError as exc:
        print(f"hft-tui: error: permission denied ({exc.filename or exc}): run as root", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        print(
            f"hft-tui: error: {exc.strerror or exc}" + (f": {exc.filename}" if getattr(exc, "filename", None) else ""),
            file=sys.stderr,
        )
        return EXIT_ERROR
    except Exception as exc:
        if os.environ.get("HFT_TUI_DEBUG"):
            raise
        print(
            f"hft-tui: internal error: {type(exc).__name__}: {exc} (HFT_TUI_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
