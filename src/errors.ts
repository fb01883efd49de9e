// Typed errors: each says what is wrong and how to fix it. The HTTP layer turns any of them into
// {"Err": message}; anything that is not a HostvolError is an unexpected fault and is logged as such.

export class HostvolError extends Error {
  override name = 'HostvolError';
}

/** The request itself is malformed (missing Name, wrong JSON types, bad volume name). */
export class InvalidRequestError extends HostvolError {
  override name = 'InvalidRequestError';
}

/** A driver option (-o key=value) is unknown, malformed or conflicts with another. */
export class InvalidOptionError extends HostvolError {
  override name = 'InvalidOptionError';
}

/** A path is outside what hostvol may use, or is not what it must be. */
export class PathError extends HostvolError {
  override name = 'PathError';
}

export class NotFoundError extends HostvolError {
  override name = 'NotFoundError';
  constructor(volume: string) {
    super(`volume "${volume}" does not exist in hostvol`);
  }
}

/** The volume exists but the operation conflicts with its current state or settings. */
export class ConflictError extends HostvolError {
  override name = 'ConflictError';
}

/** Formats an unknown thrown value for logs and Err replies without losing the code (EACCES, ENOSPC…). */
export function describe(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
