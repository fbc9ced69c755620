#!/usr/bin/env bash
# Makes sure the tools that `make demo` and `make test` use are installed:
# installs missing Debian packages when run as root with apt-get, otherwise
# says what is missing and fails.
#   scripts/need.sh COMMAND:PACKAGE ...
# The command "venv" stands for Python's venv module with ensurepip.
set -euo pipefail

missing=()
for pair in "$@"; do
  cmd=${pair%%:*}
  pkg=${pair#*:}
  if [ "$cmd" = venv ]; then
    python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=("$pkg")
  else
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${missing[@]}" >/dev/null
  exit 0
fi
echo "missing: ${missing[*]}" >&2
echo "install them (for example: sudo apt-get install ${missing[*]}) and run again" >&2
exit 1
