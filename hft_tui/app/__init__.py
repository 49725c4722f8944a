"""The full-screen app: ``hft-tui`` with no subcommand.

:func:`run` checks what the app needs before the screen opens (root, BCC,
kernel headers): a missing piece is one line on stderr with its fix, and a
non-zero exit code.  With ``--demo`` it brings the lab up around the app
and tears it down afterwards.
"""

from __future__ import annotations

import signal
import sys

EXIT_ERROR = 1


def preflight() -> str | None:
    """The one line to print when the app cannot work here, or None."""
    from ..errors import EngineError
    from ..preflight import require_bcc, require_root

    try:
        require_root()
        require_bcc()
    except EngineError as exc:
        return str(exc)
    return None


def run(args) -> int:
    poll_hz = getattr(args, "poll_hz", 10.0)
    if not 1 <= poll_hz <= 1000:
        print(f"hft-tui: error: --poll-hz {poll_hz}: give 1 to 1000 polls a second", file=sys.stderr)
        return EXIT_ERROR
    problem = preflight()
    if problem:
        print(f"hft-tui: error: {problem}", file=sys.stderr)
        return EXIT_ERROR
    if getattr(args, "demo", False):
        from .demo import run_demo

        return run_demo(args)
    from .app import HftApp

    app = HftApp(iface=args.app_iface, config_path=args.config, mode=args.mode, poll_hz=args.poll_hz)
    return run_app(app)


def run_app(app) -> int:
    """Runs the app; whatever way it ends, a supervised engine does not go on unsupervised."""
    from .app import one_line

    def on_signal(signum, frame):
        # A terminal closing (SIGHUP) or a kill (SIGTERM): stop trading, then leave.
        app.exit(None, 128 + signum, f"hft-tui: stopped by signal {signum}")

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        app.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if app.handle is not None:
            # Not the quit dialog's way out (a crash, a signal): set the kill switch.
            try:
                for line in app.release_engine("kill"):
                    print(f"hft-tui: {line}", file=sys.stderr)
            except Exception as exc:
                print(f"hft-tui: error: could not set the kill switch: {one_line(exc)}", file=sys.stderr)
    return app.return_code or 0
