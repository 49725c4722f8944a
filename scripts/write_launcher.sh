#!/usr/bin/env bash
# Writes the `hft-tui` launcher for this checkout's venv at DEST (install.sh:
# /usr/local/bin/hft-tui).  Not a symlink to the venv's console script: that
# runs Python with the user site-packages enabled (the venv is made with
# --system-site-packages, and `sudo -E` keeps HOME) and honours PYTHONPATH and
# every other PYTHON* variable, so a user's files would run as root.  The
# launcher runs the venv's Python isolated (-I: no user site, no PYTHON*
# variables, no current directory on the import path).
#   usage: write_launcher.sh DEST
set -euo pipefail
dest=${1:?usage: write_launcher.sh DEST}
cd "$(dirname "$0")/.."
python="$PWD/.venv/bin/python"
case "$python" in
  *[!A-Za-z0-9_./-]*) echo "write_launcher: the checkout's path $PWD has characters a launcher cannot quote safely" >&2; exit 1 ;;
esac
tmp=$(mktemp "$(dirname "$dest")/.hft-tui.XXXXXX")
trap 'rm -f "$tmp"' EXIT
cat >"$tmp" <<LAUNCHER
#!/bin/sh
# hft-tui launcher, written by scripts/write_launcher.sh: Python isolated (-I).
exec $python -I -m hft_tui "\$@"
LAUNCHER
chmod 0755 "$tmp"
chown 0:0 "$tmp" 2>/dev/null || true
# A symlink left by an older install is replaced, never written through.
mv -fT "$tmp" "$dest"
trap - EXIT
