"""Python from the current directory (issue 14: "Python from the current directory").

``python -m hft_tui...`` puts the current directory first on the import
path.  A user plants ``/tmp/x/hft_tui/__init__.py`` (it writes a marker
file when imported: as root, that would be anything); an administrator
starts hft-tui from /tmp/x.  Every Python child hft-tui starts (the app's
supervisor process, the demo's feed, the bench's Python bot, the perf
tool's feeder and app) and the /usr/local/bin/hft-tui launcher must not
import it; the launcher must also ignore PYTHONPATH and a user
site-packages directory (``sudo -E`` keeps HOME; the venv is made with
--system-site-packages, which keeps the user site on).
"""

from __future__ import annotations

import ast
import os
import shutil
import socket
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from hft_tui import paths
from hft_tui.bench import app_perf, bots
from hft_tui.demo import launch
from hft_tui.python_child import CHILD_CWD, python_module_argv

NOBODY_UID = 65534
NOBODY = ["setpriv", f"--reuid={NOBODY_UID}", f"--regid={NOBODY_UID}", "--clear-groups", "--inh-caps=-all"]
VENV_SCRIPT = Path(sys.executable).with_name("hft-tui")  # the console script pip made (not isolated)
NO_LAB = 149  # never brought up here: a child aimed at it starts, imports, and stops


@dataclass
class Plant:
    """A user's planted package: importing it writes ``marker`` (as root: it could do anything)."""

    cwd: Path  # /tmp/x: the package is cwd/hft_tui
    pythonpath: Path  # a directory for PYTHONPATH holding the same package
    home: Path  # a HOME whose user site-packages holds the package and a usercustomize
    marker: Path

    def imported(self) -> list[str]:
        return self.marker.read_text().split() if self.marker.exists() else []


PAYLOAD = "open({marker!r}, 'a').write({where!r} + '\\n')\n"


@pytest.fixture
def plant():
    box = Path(tempfile.mkdtemp(prefix="hft140-plant-"))
    box.chmod(0o755)
    (box / "out").mkdir(mode=0o777)  # where the planted code leaves its marker
    marker = box / "out" / "imported"
    user_site = Path(sysconfig.get_path("purelib", "posix_user", vars={"userbase": str(box / "home" / ".local")}))
    dirs = {"cwd": box / "x", "pythonpath": box / "pp", "home": box / "home"}
    for d in dirs.values():
        d.mkdir()
        os.chown(d, NOBODY_UID, NOBODY_UID)
    user_site.mkdir(parents=True)
    for made in [user_site, *user_site.parents]:
        if made == box:
            break
        os.chown(made, NOBODY_UID, NOBODY_UID)

    def put(directory: Path, where: str) -> None:
        # Written by nobody, as a user would.
        package = directory / "hft_tui"
        source = PAYLOAD.format(marker=str(marker), where=where)
        script = f"import os; os.mkdir({str(package)!r}); open({str(package / '__init__.py')!r}, 'w').write({source!r})"
        subprocess.run([*NOBODY, sys.executable, "-I", "-c", script], check=True, cwd="/")

    put(dirs["cwd"], "cwd")
    put(dirs["pythonpath"], "pythonpath")
    put(user_site, "user-site")
    (user_site / "usercustomize.py").write_text(PAYLOAD.format(marker=str(marker), where="usercustomize"))
    os.chown(user_site / "usercustomize.py", NOBODY_UID, NOBODY_UID)
    yield Plant(marker=marker, **dirs)
    shutil.rmtree(box, ignore_errors=True)


def wait_gone(proc: subprocess.Popen, timeout: float = 60) -> None:
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


# -- the children ---------------------------------------------------------------------


def test_every_python_child_is_started_isolated_from_one_place():
    """Only python_child.py builds a command line starting with sys.executable."""
    found = []
    for f in sorted(paths.PACKAGE_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.List) and any(ast.unparse(e) == "sys.executable" for e in node.elts):
                found.append(str(f.relative_to(paths.PACKAGE_DIR)))
    assert found == ["python_child.py"]
    assert python_module_argv("hft_tui.x", "a")[1:] == ["-I", "-m", "hft_tui.x", "a"]
    assert CHILD_CWD == "/"


def test_the_apps_supervisor_process_does_not_import_a_planted_package(plant, monkeypatch):
    from hft_tui.app.worker import EnginePoller

    class Target:
        def post_message(self, _message) -> bool:
            return True

    monkeypatch.chdir(plant.cwd)
    poller = EnginePoller(Target(), f"hft{NO_LAB}")  # no engine there: it starts, imports, says so, ends
    poller.start()
    wait_gone(poller.proc)
    assert poller.proc.returncode is not None
    assert plant.imported() == []


def test_the_demos_feed_does_not_import_a_planted_package(plant, monkeypatch, tmp_path):
    monkeypatch.chdir(plant.cwd)
    monkeypatch.setattr(launch, "FEED_LOG", tmp_path / "feed.log")  # not the demo's own log
    feed = launch.start_feed(os.path.relpath(paths.DEMO_CONFIG), rate=1, lab_number=NO_LAB)
    wait_gone(feed)
    log = (tmp_path / "feed.log").read_text()
    assert f"lab hft-lab-{NO_LAB} is not up" in log, log  # it ran the real feed (found no lab), config found from /
    assert plant.imported() == []


def test_the_benchs_python_bot_does_not_import_a_planted_package(plant, monkeypatch):
    monkeypatch.chdir(plant.cwd)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    strategy: list[str] = []
    for name in ("buy-target", "sell-target", "tick-size", "base-qty", "scale-qty", "max-order-qty", "max-position"):
        strategy += [f"--{name}", "1"]
    bot = bots.Bot("Python bot", bots.python_bot_argv("127.0.0.1", port, strategy), os.sched_getaffinity(0).pop(), port)
    try:
        assert bot.alive()  # it said "ready": it is running the real bot
    finally:
        bot.stop()
    assert plant.imported() == []


def test_the_perf_tools_feeder_and_app_do_not_import_a_planted_package(plant, monkeypatch):
    monkeypatch.chdir(plant.cwd)
    feeder = app_perf.start_feeder(NO_LAB, 1, str(paths.DEMO_CONFIG))
    wait_gone(feeder)
    app = app_perf.AppInTerminal(python_module_argv("hft_tui", "--version"))
    try:
        wait_gone(app.proc)
        time.sleep(0.1)
        assert b"hft-tui" in app.tail
    finally:
        app.close()
    assert plant.imported() == []


# -- the launcher -----------------------------------------------------------------------


@pytest.fixture
def launcher(tmp_path):
    dest = tmp_path / "hft-tui"
    subprocess.run(["bash", str(paths.REPO_DIR / "scripts" / "write_launcher.sh"), str(dest)], check=True)
    return dest


def test_the_launcher_is_a_root_owned_script_running_python_isolated(launcher):
    st = os.lstat(launcher)
    assert stat.S_ISREG(st.st_mode) and (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o755)
    assert launcher.read_text().splitlines()[-1] == f'exec {sys.executable} -I -m hft_tui "$@"'


def run_from(argv: list[str], plant: Plant, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*argv, "--version"],
        cwd=plant.cwd,
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_launcher_ignores_the_current_directory_pythonpath_and_the_user_site(launcher, plant):
    p = run_from([str(launcher)], plant, PYTHONPATH=str(plant.pythonpath), HOME=str(plant.home))
    assert p.returncode == 0 and p.stdout.startswith("hft-tui"), p
    assert plant.imported() == []


def test_without_isolation_the_same_plants_would_run_as_root(plant):
    """The control: the venv's own console script (what the launcher used to
    link to) imports the user's files, so the test above would catch it."""
    p = run_from([str(VENV_SCRIPT)], plant, HOME=str(plant.home))
    assert "usercustomize" in plant.imported(), p
    plant.marker.unlink()
    run_from([str(VENV_SCRIPT)], plant, PYTHONPATH=str(plant.pythonpath))
    assert "pythonpath" in plant.imported()
    plant.marker.unlink()
    subprocess.run([sys.executable, "-m", "hft_tui", "--version"], cwd=plant.cwd, capture_output=True, timeout=60)
    assert "cwd" in plant.imported()
