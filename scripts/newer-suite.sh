#!/usr/bin/env bash
# Adds Debian's next suite (trixie) as a low-priority apt source, derived from the machine's own
# source list by swapping the suite name, so that a package bookworm ships too old (Unicorn 2.0.1
# has a broken virtual-address check; we need 2.1) can be installed by name with `-t trixie`.
set -euo pipefail
SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
suite=trixie
src=/etc/apt/sources.list.d/m1prep-$suite.sources
[ -f "$src" ] && exit 0
tmp=$(mktemp)
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  # deb822: keep only stanzas for the main archive (not -security), rename the suites.
  awk -v s="$suite" '
    BEGIN { RS=""; ORS="\n\n" }
    /Suites:/ && !/security/ {
      n = split($0, lines, "\n"); out = ""
      for (i = 1; i <= n; i++) {
        l = lines[i]
        if (l ~ /^Suites:/) { gsub(/bookworm-updates/, "", l); gsub(/bookworm/, s, l) }
        out = out l "\n"
      }
      print out
    }' /etc/apt/sources.list.d/debian.sources > "$tmp"
else
  grep -E '^deb ' /etc/apt/sources.list | grep -v security | grep -v -- '-updates' \
    | sed -E "s/ bookworm / $suite /" > "$tmp"
  src=/etc/apt/sources.list.d/m1prep-$suite.list
fi
$SUDO install -m 0644 "$tmp" "$src"
rm -f "$tmp"
printf 'Package: *\nPin: release n=%s\nPin-Priority: 100\n' "$suite" | $SUDO tee /etc/apt/preferences.d/m1prep-$suite >/dev/null
echo "$suite" | $SUDO tee /etc/apt/m1prep-newer-suite >/dev/null
