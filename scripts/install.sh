#!/usr/bin/env bash
# Installs what hft-tui needs and is missing; safe to run again (each step
# checks first).  Called by `make install`, which `make demo`, `make test`
# and `make bench` depend on.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "hft-tui needs root (BPF, netlink, network namespaces): run 'sudo make ...'" >&2
  exit 1
fi

say() { printf 'install: %s\n' "$*"; }

# 0. The checkout first, before root runs anything else from it: only root
#    may be able to change it (README: Install).
bash scripts/check_checkout.sh

# 1. Distribution packages.  BCC is not on PyPI (the PyPI "bcc" is another
#    project): its Python module comes with Debian's python3-bpfcc and lives in
#    /usr/bin/python3's dist-packages.
packages=(python3-bpfcc libbpfcc bpftool iproute2 util-linux gcc libc6-dev python3-venv tcpdump tmux)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
kernel=$(uname -r)
if [ ! -e "/lib/modules/$kernel/build" ]; then
  # Headers for this exact kernel if the distribution has them, else the
  # generic package (linked below).
  if apt-cache show "linux-headers-$kernel" >/dev/null 2>&1; then
    missing+=("linux-headers-$kernel")
  else
    dpkg-query -W -f='${Status}' linux-headers-amd64 2>/dev/null | grep -q "install ok installed" \
      || missing+=(linux-headers-amd64)
  fi
fi
if [ ${#missing[@]} -gt 0 ]; then
  say "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# 2. Kernel headers.  BCC compiles against /lib/modules/$(uname -r)/build.
#    These machines run a custom kernel with no headers package and no
#    CONFIG_IKHEADERS, so point it at the distribution's generic headers:
#    the XDP program uses only stable UAPI definitions, and this was checked
#    to compile and load here.
if [ ! -e "/lib/modules/$kernel/build" ]; then
  generic=$(ls -d /lib/modules/*-amd64 2>/dev/null | grep -v "/$kernel\$" | sort -V | tail -n 1 || true)
  if [ -z "$generic" ] || [ ! -e "$generic/build" ]; then
    echo "install: no kernel headers for $kernel and no generic headers found" >&2
    exit 1
  fi
  if [ -d "/lib/modules/$kernel" ] && [ ! -L "/lib/modules/$kernel" ]; then
    ln -sfn "$(readlink -f "$generic/build")" "/lib/modules/$kernel/build"
  else
    ln -sfn "$generic" "/lib/modules/$kernel"
  fi
  say "linked kernel headers: /lib/modules/$kernel -> $generic (generic headers; $kernel has none)"
fi

# 3. The venv: made from the distribution's Python so that `import bcc` works,
#    with the rest from PyPI.
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import bcc' 2>/dev/null; then
  say "venv from /usr/bin/python3 --system-site-packages"
  rm -rf .venv
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  say "pip install -e .[test]"
  log=$(mktemp)
  if ! .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]' >"$log" 2>&1; then
    grep -v '^WARNING: Location' "$log" >&2
    rm -f "$log"
    echo "install: pip install failed (above)" >&2
    exit 1
  fi
  rm -f "$log"
  .venv/bin/python -c 'import textual, textual_plotext, pyroute2, plotext, scapy, pytest, pytest_asyncio, pytest_textual_snapshot, hypothesis, importlinter, mypy, bcc' && [ -x .venv/bin/ruff ] \
    || { echo "install: the venv is missing a package" >&2; exit 1; }
  touch .venv/.installed
fi

# 4. `sudo hft-tui` from any directory: a root-owned script running the venv's
#    Python isolated (-I), rewritten when it differs (or is an older symlink).
launcher=/usr/local/bin/hft-tui
want="exec $PWD/.venv/bin/python -I -m hft_tui \"\$@\""
if [ -L "$launcher" ] || ! grep -qxF "$want" "$launcher" 2>/dev/null; then
  bash scripts/write_launcher.sh "$launcher"
  say "launcher $launcher: $PWD/.venv/bin/python -I -m hft_tui"
fi

# 5. bpffs (the engine mounts it too, but say so early if it cannot be):
#    mode 0700, root's alone (without a mode it is 1777: anyone may make entries).
if ! grep -qs ' /sys/fs/bpf bpf ' /proc/mounts; then
  mount -t bpf -o mode=0700 bpf /sys/fs/bpf && say "mounted bpffs on /sys/fs/bpf (mode 0700)"
fi

# 6. The checkout again, with the venv's start-up files (what hft-tui checks each time it runs as root).
check='import sys
from hft_tui.errors import HftError
from hft_tui.preflight import require_trusted_code
try:
    require_trusted_code()
except HftError as exc:
    sys.exit(f"install: {exc}")'
if ! .venv/bin/python -I -c "$check"; then
  echo "install: install from a checkout only root can write (README: Install)" >&2
  exit 1
fi
