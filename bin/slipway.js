#!/usr/bin/env node
// The compiled CLI lives in dist/; `npm run build` (or scripts/test.sh) makes it.
import '../dist/src/cli/main.js';
