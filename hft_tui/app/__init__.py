"""The full-screen app: ``hft-tui`` with no subcommand.

:func:`run` checks what the app needs before the screen opens (root, BCC,
kernel headers): a missing piece is one line on stderr with its fix, and a
non-zero exit code.  ``--demo`` is hft_tui.demo's (it brings the lab up
around this app).
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


def startup_problem(args) -> str | None:
    """The one line to print when the app cannot start with ``args``, or None."""
    poll_hz = getattr(args, "poll_hz", 10.0)
    if not 1 <= poll_hz <= 1000:
        return f"--poll-hz {poll_hz}: give 1 to 1000 polls a second"
    return preflight()


def run(args) -> int:
    problem = startup_problem(args)
    if problem:
        print(f"hft-tui: error: {problem}", file=sys.stderr)
        return EXIT_ERROR
    from .app import HftApp
    from .session import EngineSession

    session = EngineSession(config_path=args.config, poll_hz=args.poll_hz)
    return run_app(HftApp(session, iface=args.app_iface, mode=args.mode))


def run_app(app, **run_options) -> int:
    """Runs the app; whatever way it ends, a supervised engine does not go on unsupervised.
    What the app has to say on its way out is printed once the terminal is back:
    after an unexpected exception, one line (the traceback is in the crash log)."""
    from .formatting import one_line

    def on_signal(signum, frame):
        # A terminal closing (SIGHUP) or a kill (SIGTERM): stop trading, then leave.
        app.leave(128 + signum, [f"hft-tui: stopped by signal {signum}"])

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        app.run(**run_options)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if app.session.iface is not None:
            # Not the quit dialog's way out, and the app's own unmount did not run: set the kill switch.
            try:
                for line in app.session.release("kill"):
                    print(f"hft-tui: {line}", file=sys.stderr)
            except Exception as exc:
                print(f"hft-tui: error: could not set the kill switch: {one_line(exc)}", file=sys.stderr)
    if app.crash.text:
        where = app.crash.saved or "(could not write a crash log)"
        print(
            f"hft-tui: error: the app failed ({app.crash.summary()}); "
            f"{'; '.join(app.released) or 'no engine was supervised'}; details in {where}",
            file=sys.stderr,
        )
    for line in app.farewell:
        print(line, file=sys.stderr)
    return app.return_code or 0
