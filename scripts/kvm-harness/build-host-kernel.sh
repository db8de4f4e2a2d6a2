#!/usr/bin/env bash
# Builds the L1 host kernel of the nested KVM harness, once per input, outside the clone:
# Debian's linux-source-6.1 + host-patch/kvm-impdef-sysreg-exits/*.patch, arm64, allnoconfig +
# scripts/kvm-harness/host.config, with Debian's cross compiler. Prints the directory holding
# Image and kernel.config (${M1PREP_CACHE:-$HOME/.cache/m1prep}/kvm-host-<hash>) as the last line.
# The patched source tree is private to this script (the shared extracted source stays pristine).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache="${M1PREP_CACHE:-$HOME/.cache/m1prep}"
tarball=/usr/src/linux-source-6.1.tar.xz
cross=aarch64-linux-gnu-
jobs="${M1PREP_JOBS:-2}"
patches=("$root"/host-patch/kvm-impdef-sysreg-exits/*.patch)
log() { printf 'build-host-kernel: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 4; }

command -v "${cross}gcc" >/dev/null || die "${cross}gcc not found (apt-get install gcc-aarch64-linux-gnu)"
[ -f "$tarball" ] || die "$tarball not found (apt-get install linux-source-6.1)"
for t in make gcc bc bison flex patch; do command -v "$t" >/dev/null || die "$t not found"; done

src_version=$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null || stat -c %Y "$tarball")
recipe=1
key=$( { echo "linux-source-6.1 $src_version recipe $recipe"; "${cross}gcc" -dumpversion;
         cat "$here/host.config" "${patches[@]}"; } | sha256sum | cut -c1-16)
out="$cache/kvm-host-$key"
mkdir -p "$cache"
exec 9>"$cache/kvm-host.lock"
flock 9
if [ -f "$out/Image" ]; then log "cached: $out"; echo "$out"; exit 0; fi

# 1. A private, patched copy of the source (re-made when the patch changes).
src="$cache/kvm-host-src-$key"
if [ ! -f "$src/.patched" ]; then
  rm -rf "$src" && mkdir -p "$src"
  log "extracting $tarball"
  nice tar -xf "$tarball" -C "$src" --strip-components=1
  for p in "${patches[@]}"; do
    log "applying $(basename "$p")"
    patch -d "$src" -p1 --forward --quiet < "$p" || die "$(basename "$p") does not apply to linux-source-6.1 $src_version"
  done
  touch "$src/.patched"
fi

# 2. Configure and build (the object directory survives an interrupted build).
kbuild="$src/.build"
mk() { nice make -s -C "$src" O="$kbuild" ARCH=arm64 CROSS_COMPILE="$cross" "$@"; }
mkdir -p "$kbuild"
bash "$root/scripts/kernel-config-fragment.sh" "$src" "$kbuild" "$here/host.config"
log "building Image with make -j$jobs"
start=$(date +%s)
mk -j"$jobs" Image >&2
mkdir -p "$out.tmp"
cp "$kbuild/arch/arm64/boot/Image" "$kbuild/.config" "$out.tmp/"
mv "$out.tmp/.config" "$out.tmp/kernel.config"
# The usr/gen_init_cpio helper of the same source packs the harness initramfs.
gcc -O2 -o "$out.tmp/gen_init_cpio" "$src/usr/gen_init_cpio.c"
rm -rf "$out" && mv "$out.tmp" "$out"
rm -rf "$src"
log "built in $(( $(date +%s) - start )) s"
echo "$out"
