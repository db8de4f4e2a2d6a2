#!/usr/bin/env bash
# Configures a Linux object directory as `allnoconfig` + a config fragment, for arm64 with Debian's
# cross compiler, and fails if any CONFIG_ line of the fragment did not survive `olddefconfig` (an
# unmet dependency would otherwise drop an option silently). Marks success with KBUILD/.config.done
# so that a resumed build does not reconfigure (which would rebuild everything).
#
#   scripts/kernel-config-fragment.sh SRC_DIR KBUILD_DIR FRAGMENT
#
# Used by scripts/build-linux-guest.sh (the proof guest) and usable by any arm64 kernel build here.
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 SRC_DIR KBUILD_DIR FRAGMENT" >&2; exit 2; }
src=$1 kbuild=$2 fragment=$3
[ -f "$kbuild/.config.done" ] && exit 0
mk() { nice make -s -C "$src" O="$kbuild" ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- "$@"; }
mkdir -p "$kbuild"
mk allnoconfig >&2
KCONFIG_CONFIG="$kbuild/.config" "$src/scripts/kconfig/merge_config.sh" -m -O "$kbuild" \
  "$kbuild/.config" "$fragment" >/dev/null
mk olddefconfig >&2
missing=""
while IFS= read -r line; do
  case "$line" in CONFIG_*=*) grep -qxF "$line" "$kbuild/.config" || missing="$missing $line";; esac
done < "$fragment"
if [ -n "$missing" ]; then
  echo "kernel-config-fragment: options of $(basename "$fragment") that did not survive olddefconfig (unmet dependencies?):$missing" >&2
  exit 4
fi
touch "$kbuild/.config.done"
