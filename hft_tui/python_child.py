"""How hft-tui starts a Python process of its own: isolated, from /.

``python -m pkg`` puts the current directory first on the import path: a
user's ``/tmp/hft_tui/__init__.py`` would run as root when an administrator
starts ``sudo hft-tui`` from /tmp.  Every child (the app's supervisor
process, the demo's feed, the bench's Python bot, the perf tool's feeder and
app) is started with ``-I`` (isolated: no current directory or script
directory on the path, no user site-packages, no ``PYTHON*`` variables) and
with ``/`` as its working directory.  The launcher /usr/local/bin/hft-tui
(scripts/write_launcher.sh) starts the top process the same way.
"""

from __future__ import annotations

import sys

#: the working directory of every child: nothing there is importable, and it never goes away
CHILD_CWD = "/"


def python_module_argv(module: str, *args: str) -> list[str]:
    """argv running ``python -m module args...`` with this interpreter, isolated."""
    return [sys.executable, "-I", "-m", module, *args]
