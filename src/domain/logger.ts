/** The slice of a pino logger (Fastify's `app.log`) the domain writes to. */
export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}
