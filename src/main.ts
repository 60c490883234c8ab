#!/usr/bin/env node
import { start } from './cli/start.js';

process.exit(await start(process.argv.slice(2)));
