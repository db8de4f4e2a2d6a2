#!/usr/bin/env bash
# Builds the KVM test guest into DIR (default: a fresh temporary directory): guest.bin (the IMPDEF-register
# test) and bench.bin (MMIO and FastIPI timing), arm64 Images, and guest.dtb, with Debian's clang, ld.lld, llvm-objcopy and dtc. Prints DIR.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$(mktemp -d)}
mkdir -p "$out"
pick() { for t in "$@"; do command -v "$t" >/dev/null && { echo "$t"; return; }; done; echo "kvm-test: none of $* found" >&2; exit 4; }
clang=$(pick clang clang-14); lld=$(pick ld.lld ld.lld-14); objcopy=$(pick llvm-objcopy llvm-objcopy-14)
for g in guest bench; do
  "$clang" -target aarch64-none-elf -c "$here/$g.S" -o "$out/$g.o"
  "$lld" -Ttext 0 -e _start "$out/$g.o" -o "$out/$g.elf"
  "$objcopy" -O binary "$out/$g.elf" "$out/$g.bin"
  rm -f "$out/$g.o" "$out/$g.elf"
done
dtc -q -I dts -O dtb -o "$out/guest.dtb" "$here/guest.dts"
echo "$out"
