#!/usr/bin/env bash
# Builds m1prep's Linux proof guest, outside the clone, once per input:
#   Image                 Debian's linux-source-6.1 for arm64, allnoconfig + guests/linux/m1prep.config
#   initramfs.cpio.gz     Debian's busybox-static (arm64) + guests/linux/init, from guests/linux/initramfs.list
#   t8103-j274.dtb        the upstream device tree of that source (scripts/build-t8103-dtb.sh), the
#                         base from which `m1prep dtree layout --fdt` derives the VM's FDT
# into ${M1PREP_CACHE:-$HOME/.cache/m1prep}/linux-6.1-<hash of the inputs>/ and prints that directory
# as the last line of stdout. A second run with the same inputs only checks the stamp (instant).
# Needs: gcc-aarch64-linux-gnu, linux-source-6.1, gcc, make, bc, bison, flex, cpio, gzip, dtc
# (scripts/setup.d/base.apt + linux.apt). Logs go to stderr and to build.log in the output directory.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
guest="$root/guests/linux"
cache="${M1PREP_CACHE:-$HOME/.cache/m1prep}"
tarball=/usr/src/linux-source-6.1.tar.xz
cross=aarch64-linux-gnu-
jobs="${M1PREP_JOBS:-2}"
log() { printf 'build-linux-guest: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 4; }

command -v "${cross}gcc" >/dev/null || die "${cross}gcc not found (apt-get install gcc-aarch64-linux-gnu)"
[ -f "$tarball" ] || die "$tarball not found (apt-get install linux-source-6.1)"
for t in make gcc bc bison flex gzip dtc cpp; do
  command -v "$t" >/dev/null || die "$t not found (bash scripts/setup.sh installs it)"
done

src_version=$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null || stat -c %Y "$tarball")
# The kernel depends only on the source, the compiler, the fragment and the recipe below (bump
# kernel_recipe when the kernel steps change; comments in the fragment do not count); the guest
# directory also on init, list and this script.
kernel_recipe=1
kkey=$( { echo "linux-source-6.1 $src_version recipe $kernel_recipe"; "${cross}gcc" -dumpversion;
          sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$guest/m1prep.config"; } | sha256sum | cut -c1-16)
key=$( { echo "$kkey"; cat "$guest/init" "$guest/initramfs.list" "$here/build-linux-guest.sh"; } | sha256sum | cut -c1-16)
out="$cache/linux-6.1-$key"
kernel="$cache/linux-6.1-kernel-$kkey"
mkdir -p "$cache"

# One builder at a time per cache (parallel test workers wait here instead of building twice).
exec 9>"$cache/linux-guest.lock"
flock 9

if [ -f "$out/done" ]; then
  log "cached: $out"
  echo "$out"
  exit 0
fi

rm -rf "$out.tmp"
mkdir -p "$out.tmp"
exec 3>&2 2> >(tee "$out.tmp/build.log" >&3)
start=$(date +%s)

# 1. Kernel source, extracted once per Debian package version and shared by every config.
srcdir="$cache/src/linux-source-6.1-$src_version"
if [ ! -f "$srcdir/Makefile" ]; then
  log "extracting $tarball"
  rm -rf "$srcdir.tmp" && mkdir -p "$srcdir.tmp"
  nice tar -xf "$tarball" -C "$srcdir.tmp" --strip-components=1
  rm -rf "$srcdir" && mv "$srcdir.tmp" "$srcdir"
fi

# 2.-3. The kernel Image, built once per kernel key. The object directory survives an interrupted
#    build (make resumes where it stopped) and is deleted after success: only the Image is kept.
if [ ! -f "$kernel/Image" ]; then
  kbuild="$kernel.build"
  mk() { nice make -s -C "$srcdir" O="$kbuild" ARCH=arm64 CROSS_COMPILE="$cross" "$@"; }
  bash "$here/kernel-config-fragment.sh" "$srcdir" "$kbuild" "$guest/m1prep.config"
  # The Image only (no modules).
  log "building Image with make -j$jobs (about 4 minutes on 2 idle cores)"
  mk -j"$jobs" Image >&2
  mkdir -p "$kernel.tmp"
  cp "$kbuild/arch/arm64/boot/Image" "$kernel.tmp/Image"
  cp "$kbuild/.config" "$kernel.tmp/kernel.config"
  rm -rf "$kernel" && mv "$kernel.tmp" "$kernel"
  rm -rf "$kbuild"
fi
cp "$kernel/Image" "$kernel/kernel.config" "$out.tmp/"

# 4. Base FDT: the upstream t8103-j274 tree of the same source, built by the device-tree area's
#    script. The VM's FDT is derived from it per CPU count by `m1prep dtree layout --fdt`.
cp "$(M1PREP_CACHE="$cache" bash "$here/build-t8103-dtb.sh")" "$out.tmp/t8103-j274.dtb"

# 5. Initramfs: busybox-static for arm64 from Debian, fetched with a private apt state (no change to
#    the host's architectures or package lists), packed with the kernel's gen_init_cpio.
aptdir="$cache/apt-arm64"
mkdir -p "$aptdir/lists/partial" "$aptdir/cache/archives/partial"
touch "$aptdir/status"
aptopts=(-o "Dir::State::Lists=$aptdir/lists" -o "Dir::Cache=$aptdir/cache" -o "Dir::State::status=$aptdir/status"
         -o APT::Architecture=arm64 -o APT::Architectures::=arm64 -o APT::Sandbox::User=root)
log "fetching busybox-static:arm64"
apt-get -qq "${aptopts[@]}" update >&2
debdir="$out.tmp/deb"
mkdir -p "$debdir"
(cd "$debdir" && apt-get -qq "${aptopts[@]}" download busybox-static:arm64 >&2)
dpkg-deb -x "$debdir"/busybox-static_*_arm64.deb "$debdir/root"
busybox="$debdir/root/bin/busybox"
file_out=$(od -An -tx1 -N20 "$busybox" | tr -d ' \n')
# ELF magic, 64-bit, little-endian, e_machine 0xb7 (AArch64) at offset 18.
case "$file_out" in 7f454c460201*b700) ;; *) die "$busybox is not an arm64 ELF";; esac
dpkg-deb -f "$debdir"/busybox-static_*_arm64.deb Version > "$out.tmp/busybox.version"

gcc -O2 -o "$out.tmp/gen_init_cpio" "$srcdir/usr/gen_init_cpio.c"
sed -e "s|@BUSYBOX@|$busybox|" -e "s|@INIT@|$guest/init|" "$guest/initramfs.list" > "$out.tmp/initramfs.list"
"$out.tmp/gen_init_cpio" "$out.tmp/initramfs.list" | gzip -9n > "$out.tmp/initramfs.cpio.gz"

rm -rf "$debdir" "$out.tmp/gen_init_cpio"
log "built in $(( $(date +%s) - start )) s"
exec 2>&3
rm -rf "$out"
mv "$out.tmp" "$out"
touch "$out/done"
echo "$out"
