/** One workload's environment: a fresh database and two fresh replicas sharing one Redis. */
import { randomBytes } from 'node:crypto';
import { log } from '../lib/log.js';
import { createDatabase } from './postgres.js';
import { type Replica, startReplicas } from './replicas.js';

export const REPLICAS = 2;

export interface StackContext {
  root: string;
  runDir: string;
  redisUrl: string;
}

export interface Stack {
  replicas: Replica[];
  urls: string[];
  /** The workload's own database (workloads that seed rows directly). */
  databaseUrl: string;
  /** Stops the replicas, then drops the database. */
  stop(): Promise<void>;
}

export async function startStack(context: StackContext, label: string): Promise<Stack> {
  const database = await createDatabase();
  try {
    const { replicas, stop } = await startReplicas(REPLICAS, {
      ...context,
      label,
      databaseUrl: database.url,
      jwtSecret: randomBytes(32).toString('base64url'),
    });
    return {
      replicas,
      urls: replicas.map((r) => r.url),
      databaseUrl: database.url,
      stop: async () => {
        log(`${label}: stopping replicas`);
        await stop();
        await database.drop();
      },
    };
  } catch (error) {
    await database.drop();
    throw error;
  }
}
