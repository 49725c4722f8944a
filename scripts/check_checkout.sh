#!/usr/bin/env bash
# Refuses (exit 1, one line) a checkout a user other than root can change:
# root compiles ebpf/ into the kernel and runs hft_tui/ from it (an editable
# install), so a file or directory of it, or a directory above it, that
# another user can change is that user's root shell.  A sticky directory
# (/tmp) may be on the way: only an entry's owner can replace it there.
# install.sh runs this before anything else; hft-tui itself checks again
# each time it runs as root (hft_tui/preflight.py).
#   usage: check_checkout.sh   (from anywhere: it checks the checkout it is in)
set -euo pipefail
cd "$(dirname "$0")/.."

changeable() {  # the first of the paths given (and below them) a user other than root can change
  find "$@" \( ! -user 0 -o \( ! -type l \( \( -perm -0020 ! -group 0 \) \
    -o \( -perm -0002 ! \( -type d -perm -1000 \) \) \) \) \) -print 2>/dev/null | head -n 1
}

above=()
d=$PWD
while [ "$d" != / ]; do above+=("$d"); d=$(dirname "$d"); done
bad=$(changeable hft_tui ebpf scripts Makefile pyproject.toml configs)
[ -z "$bad" ] || bad="$PWD/$bad"
[ -n "$bad" ] || bad=$(changeable / "${above[@]}" -maxdepth 0)
if [ -n "$bad" ]; then
  echo "install: $bad can be changed by a user other than root: install from a checkout only root can write (README: Install)" >&2
  exit 1
fi
