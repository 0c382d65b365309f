#!/usr/bin/env node
// The `lowbit` executable (package.json "bin"): see lowbit.ts for the commands.
import { runCli } from './lowbit.js';

runCli(process.argv.slice(2)).then((code) => process.exit(code), (e: unknown) => { console.error(e); process.exit(1); });
