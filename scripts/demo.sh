#!/usr/bin/env bash
# What `npm run demo` runs (after `npm run build`): build the bundled sample kernel collection from
# source, patch it with a shipped profile, boot it on the virtual M1 and verify its checklist.
#   M1PREP_DEMO_PROFILE  profile / sample flavour (default 12.3; any of `m1prep sample list`)
#   M1PREP_DEMO_CPUS     vCPUs (default 4)
#   M1PREP_DEMO_FS       ramdisk file system: apfs or hfsplus (default: the profile's)
#   M1PREP_DEMO_OUT      output directory (default out/demo-<profile>; out/ is ignored by git)
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE=${M1PREP_DEMO_PROFILE:-12.3}
CPUS=${M1PREP_DEMO_CPUS:-4}
OUT=${M1PREP_DEMO_OUT:-out/demo-$PROFILE}
SAMPLES=${M1PREP_SAMPLE_DIR:-samples/build}
m1prep() { node bin/m1prep.js "$@"; }
# Bold step headers only on a terminal, and never with NO_COLOR set.
if [ -t 2 ] && [ -z "${NO_COLOR:-}" ]; then
  step() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }
else
  step() { printf '\n==> %s\n' "$*" >&2; }
fi

[ -f dist/src/cli/main.js ] || npm run build

step "1/3  build the sample kernel collection for $PROFILE from samples/xnu-guest (clang + ld64.lld -> MH_FILESET -> IM4P)"
nice node bin/m1prep.js sample build "$PROFILE" --out "$SAMPLES" --verbose

step "2/3  patch it: m1prep patch --profile $PROFILE --kernelcache $SAMPLES/$PROFILE/kernelcache.im4p --out $OUT"
fs=()
[ -n "${M1PREP_DEMO_FS:-}" ] && fs=(--ramdisk-fs "$M1PREP_DEMO_FS")
m1prep patch --profile "$PROFILE" --kernelcache "$SAMPLES/$PROFILE/kernelcache.im4p" --out "$OUT" "${fs[@]}"

step "3/3  boot it on the virtual M1 with $CPUS CPUs and verify: m1prep boot $OUT --verify --cpus $CPUS"
if m1prep boot "$OUT" --verify --cpus "$CPUS"; then
  step "demo passed: the sample booted through its whole checklist (artifacts in $OUT)"
else
  rc=$?
  step "demo FAILED (exit $rc): see the console and summary above; artifacts in $OUT"
  exit $rc
fi
