#!/usr/bin/env node
// Entry point: the compiled CLI (npm run build, run by npm ci/prepare and npm test).
import '../dist/src/cli/main.js';
