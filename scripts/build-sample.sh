#!/usr/bin/env bash
# Build the bundled sample guest from source: one MH_FILESET kernel collection per profile version,
# packed as IM4P (LZFSE), in samples/build/<profile>/ (ignored by git; $M1PREP_SAMPLE_DIR moves it).
# Arguments go to `m1prep sample build`: flavours (12.3, 14.x, ...; default all), --force, --out DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/src/cli/main.js ] || npm run build >/dev/null
exec nice node bin/m1prep.js sample build "$@"
