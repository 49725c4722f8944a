"""The full-screen app: ``hft-tui`` with no subcommand.

:func:`run` checks what the app needs before the screen opens (root, BCC,
kernel headers): a missing piece is one line on stderr with its fix, and a
non-zero exit code.  ``--demo`` is hft_tui.demo's (it brings the lab up
around this app).
"""

from __future__ import annotations

import contextlib
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


def say(line: str) -> None:
    """A line on stderr, if there is still a terminal to print it on."""
    with contextlib.suppress(OSError, ValueError):
        print(line, file=sys.stderr, flush=True)


def run_app(app, *, signals=None, **run_options) -> int:
    """Runs the app; whatever way it ends, a supervised engine does not go on unsupervised.
    What the app has to say on its way out is printed once the terminal is back:
    after an unexpected exception, one line (the traceback is in the crash log).

    SIGHUP (the terminal closed) and SIGTERM stop the app through its event
    loop, with a watchdog behind (shutdown.SignalWatch): ``signals`` is the
    caller's watch when it has one already (the demo installs its own before
    its lab), else one is installed for the app's life."""
    from .formatting import one_line
    from .shutdown import SignalWatch

    own = signals is None
    if own:
        signals = SignalWatch().install()
    signals.safety.insert(0, app.abandon)  # first, whatever the caller's steps are
    app.signals = signals
    try:
        try:
            app.run(**run_options)
        finally:
            signals.app_exited()
            if app.session.iface is not None:
                # Not the quit dialog's way out, and the app's own unmount did not run: set the kill switch.
                try:
                    for line in app.session.release("kill"):
                        say(f"hft-tui: {line}")
                except Exception as exc:
                    say(f"hft-tui: error: could not set the kill switch: {one_line(exc)}")
        if app.crash.text:
            where = app.crash.saved or "(could not write a crash log)"
            say(
                f"hft-tui: error: the app failed ({app.crash.summary()}); "
                f"{'; '.join(app.released) or 'no engine was supervised'}; details in {where}"
            )
        for line in app.farewell:
            say(line)
        return app.return_code or 0
    finally:
        if own:
            signals.finished()
