#!/usr/bin/env bash
# Builds Linux's upstream device tree for the Mac mini M1 (arch/arm64/boot/dts/apple/t8103-j274.dts)
# from Debian's linux-source-6.1 tarball, the way the kernel's dtbs rule does (cpp, then dtc).
# Only arch/arm64/boot/dts/apple and include/dt-bindings are extracted, into a cache outside the
# repository. Prints the path of the .dtb on stdout; later runs reuse it.
#
#   scripts/build-t8103-dtb.sh            -> ~/.cache/m1prep/dts/t8103-j274.dtb
#   M1PREP_CACHE=/some/dir scripts/build-t8103-dtb.sh
#
# The base tree of `m1prep dtree layout --fdt BASE` (Linux guests).
set -euo pipefail

tarball="${LINUX_SOURCE_TARBALL:-/usr/src/linux-source-6.1.tar.xz}"
cache="${M1PREP_CACHE:-$HOME/.cache/m1prep}/dts"
out="$cache/t8103-j274.dtb"

if [[ -s "$out" && "$out" -nt "$tarball" ]]; then
  echo "$out"
  exit 0
fi
for t in tar cpp dtc; do
  command -v "$t" >/dev/null || { echo "build-t8103-dtb: $t is missing (apt-get install device-tree-compiler cpp)" >&2; exit 4; }
done
[[ -r "$tarball" ]] || { echo "build-t8103-dtb: $tarball not found (apt-get install linux-source-6.1)" >&2; exit 4; }

mkdir -p "$cache"
work="$(mktemp -d "$cache/.build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
top="$(basename "$tarball" .tar.xz)"   # Debian: linux-source-6.1.tar.xz holds linux-source-6.1/
tar -xJf "$tarball" -C "$work" --wildcards "$top/arch/arm64/boot/dts/apple/*" "$top/include/dt-bindings/*"
src="$work/$top"
cpp -nostdinc -I "$src/include" -I "$src/arch/arm64/boot/dts" -undef -x assembler-with-cpp \
  "$src/arch/arm64/boot/dts/apple/t8103-j274.dts" \
  | dtc -q -I dts -O dtb -o "$work/t8103-j274.dtb" -
mv "$work/t8103-j274.dtb" "$out"
echo "$out"
