#!/usr/bin/env node
import { main } from './cli/cli.js';
import { createLogger, routeProcessWarnings } from './base/log.js';

process.title = 'tlsboot';
const args = process.argv.slice(2);
// Before anything can warn. The format follows --log-format where it is given.
const json = args.some((a, i) => a === '--log-format=json' || (a === '--log-format' && args[i + 1] === 'json')) || process.env['TLSBOOT_LOG_FORMAT'] === 'json';
routeProcessWarnings(createLogger({ format: json ? 'json' : 'text' }));
const code = await main(args);
process.exit(code);
