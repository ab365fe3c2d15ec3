/**
 * What must be undone before the process exits (replicas, redis-server, the database), in
 * reverse order of creation. The normal path releases each item itself; on failure or a
 * signal, run.ts calls `cleanupAll()`. Each undo runs at most once, whichever path gets there.
 */
import { errorMessage, log } from '../lib/log.js';

type Undo = () => Promise<void>;

const pending: { name: string; run: () => Promise<void> }[] = [];

/** Registers `undo`; the returned function runs it (once) and unregisters it. */
export function onCleanup(name: string, undo: Undo): () => Promise<void> {
  let done: Promise<void> | undefined;
  const entry = {
    name,
    run: (): Promise<void> => {
      done ??= (async () => {
        const i = pending.indexOf(entry);
        if (i >= 0) pending.splice(i, 1);
        try {
          await undo();
        } catch (error) {
          log(`cleanup of ${name} failed: ${errorMessage(error)}`);
        }
      })();
      return done;
    },
  };
  pending.push(entry);
  return entry.run;
}

/** Runs every pending undo, newest first. */
export async function cleanupAll(): Promise<void> {
  for (let guard = 0; pending.length > 0 && guard < 1000; guard++) await pending[pending.length - 1]!.run();
}
