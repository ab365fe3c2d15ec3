// Counts the tests in tap's TAP output (stdin) and prints "N passed, N failed".
// A test is a named subtest of a test file (one level below the file); a file that fails
// without any failing test of its own (it crashed, timed out) counts as one failure.
import { createInterface } from 'node:readline';

let passed = 0;
let failed = 0;
let fileFailures = 0;
let failedInFile = 0;
for await (const line of createInterface({ input: process.stdin })) {
  const test = /^ {4}(not )?ok \d+ /.exec(line);
  if (test) {
    if (test[1]) (failed += 1), (failedInFile += 1);
    else if (!/# SKIP/.test(line)) passed += 1;
    continue;
  }
  const file = /^(not )?ok \d+ - /.exec(line);
  if (file) {
    if (file[1] && failedInFile === 0) fileFailures += 1;
    failedInFile = 0;
  }
}
console.log(`${passed} passed, ${failed + fileFailures} failed`);
