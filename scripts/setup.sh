#!/usr/bin/env bash
# Installs everything m1prep's demo and tests need on a fresh Debian 12 machine:
# Debian packages (each area lists its own in scripts/setup.d/*.apt), packages from a newer
# Debian suite where bookworm's are too old (scripts/setup.d/*.newer), then `npm ci`.
# Safe to run again: it only installs what is missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
log() { printf 'setup: %s\n' "$*" >&2; }

want=$(cat "$here"/setup.d/*.apt 2>/dev/null | sed 's/#.*//' | tr -s ' \n' '\n' | sort -u | grep -v '^$' || true)
newer=$(cat "$here"/setup.d/*.newer 2>/dev/null | sed 's/#.*//' | tr -s ' \n' '\n' | sort -u | grep -v '^$' || true)

missing=""
for p in $want $newer; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done

if [ -n "$missing" ]; then
  if [ -n "$newer" ]; then
    # A private source list for the next Debian suite, derived from this machine's own lists by
    # swapping the suite name, pinned low so that only the packages we name come from it.
    "$here/newer-suite.sh"
  fi
  log "installing Debian packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  plain=""
  for p in $want; do case " $missing " in *" $p "*) plain="$plain $p";; esac; done
  if [ -n "$plain" ]; then $SUDO apt-get install -y -qq --no-install-recommends $plain >/dev/null; fi
  for p in $newer; do
    case " $missing " in *" $p "*) $SUDO apt-get install -y -qq --no-install-recommends -t "$(cat /etc/apt/m1prep-newer-suite)" "$p" >/dev/null;; esac
  done
fi

# Area-specific steps that are not plain packages (for example arm64 packages fetched for a guest).
for s in "$here"/setup.d/*.sh; do
  [ -e "$s" ] || continue
  bash "$s"
done

cd "$root"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
log "ready"
