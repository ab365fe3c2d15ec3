// Preloaded into a replica (NODE_OPTIONS=--import=...) by test/tracing.test.ts: appends the URL
// of every module the process resolves, and the module that imported it, to MODULE_RECORD_FILE
// (`<url>\t<parent>` lines), so the test can tell what was loaded and by whom.
import { appendFileSync } from 'node:fs';
import { registerHooks } from 'node:module';

const file = process.env.MODULE_RECORD_FILE;
if (file) {
  registerHooks({
    resolve(specifier, context, nextResolve) {
      const resolved = nextResolve(specifier, context);
      appendFileSync(file, `${resolved.url}\t${context.parentURL ?? ''}\n`);
      return resolved;
    },
  });
}
