// Counts the tests in tap's TAP output (stdin) and prints "N passed, N failed".
// A test is a named subtest of a test file (one level below the file); a file that fails
// without any failing test of its own (it crashed, timed out) counts as one failure.
// Before the count it lists what failed, with the first lines of each failing assertion's
// diagnostics: CI keeps only the tail of the log, and a flaky failure must be findable there.
import { createInterface } from 'node:readline';

const DIAGNOSTIC_LINES = 12;

let passed = 0;
let failed = 0;
let fileFailures = 0;
let failedInFile = 0;
let file = '';
/** @type {string[]} */
const report = [];
/** @type {string[]} */
let pending = []; // a test's failing assertions, printed under its name once it ends
let diagnostics = 0;
for await (const line of createInterface({ input: process.stdin })) {
  const fileStart = /^# Subtest: (.*)$/.exec(line);
  if (fileStart) file = fileStart[1];
  if (diagnostics > 0) {
    if (/^\s+(---|\.\.\.)$/.test(line) || /^\s+(not )?ok \d+ /.test(line)) {
      if (/\.\.\.$/.test(line)) diagnostics = 0;
    } else {
      pending.push(`      ${line.trim()}`);
      diagnostics -= 1;
    }
  }
  // An assertion failing inside a test (eight spaces or more): its name and its diagnostics.
  const assertion = /^ {8,}not ok \d+ - (.*)$/.exec(line);
  if (assertion) {
    pending.push(`    ${assertion[1]}`);
    diagnostics = DIAGNOSTIC_LINES;
  }
  const test = /^ {4}(not )?ok \d+ - ?(.*)$/.exec(line);
  if (test) {
    if (test[1]) (failed += 1), (failedInFile += 1), report.push(`  ${file}: ${test[2]}`, ...pending);
    else if (!/# SKIP/.test(line)) passed += 1;
    pending = [];
    diagnostics = 0;
    continue;
  }
  const fileEnd = /^(not )?ok \d+ - (.*)$/.exec(line);
  if (fileEnd) {
    if (fileEnd[1] && failedInFile === 0) (fileFailures += 1), report.push(`  ${fileEnd[2]} (the file itself failed)`);
    failedInFile = 0;
  }
}
if (report.length > 0) console.log(['failures:', ...report].join('\n'));
console.log(`${passed} passed, ${failed + fileFailures} failed`);
