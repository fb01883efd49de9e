// The Docker volume plugin wire contract, defined once. Request schemas are lenient where dockerd
// is (extra fields ignored, Opts may be null); the TypeScript types are inferred from the schemas.
import { z } from 'zod';
import { UNPAIRED_SURROGATE } from '../volumes/options';

// Retries after a dropped connection re-send the request with an empty body, so Name may be absent.
const name = z.string({ error: 'request has no volume Name (dockerd sends an empty body when it retries)' });

export const CreateRequest = z.object({
  Name: name,
  // CLI 23+ sends null when no -o was given; the 20.10 CLI sends {}.
  Opts: z.record(z.string(), z.string()).nullish(),
});
export const NameRequest = z.object({ Name: name });

export const MountRequest = z.object({
  Name: name,
  // ID is an opaque per-mount-point token chosen by dockerd (not the container ID).
  ID: z
    .string({ error: 'request has no Mount ID' })
    .min(1, 'request has an empty Mount ID')
    .refine((id) => !UNPAIRED_SURROGATE.test(id), {
      error: 'request has a Mount ID that is not valid Unicode (an unpaired surrogate); dockerd sends 64 hex digits',
    }),
});

export type CreateRequest = z.infer<typeof CreateRequest>;
export type NameRequest = z.infer<typeof NameRequest>;
export type MountRequest = z.infer<typeof MountRequest>;

export const VolumeInfo = z.object({
  Name: z.string(),
  Mountpoint: z.string(),
  // dockerd decodes this into time.Time: it must be RFC 3339 or absent, never "".
  CreatedAt: z.iso.datetime().optional(),
  Status: z.record(z.string(), z.unknown()).optional(),
});
export type VolumeInfo = z.infer<typeof VolumeInfo>;

export const ErrResponse = z.object({ Err: z.string().min(1) });
export const ActivateResponse = z.object({ Implements: z.array(z.string()) });
export const EmptyResponse = z.object({});
export const MountResponse = z.object({ Mountpoint: z.string() });
export const GetResponse = z.object({ Volume: VolumeInfo });
export const ListResponse = z.object({
  Volumes: z.array(VolumeInfo.pick({ Name: true, Mountpoint: true })),
});
export const CapabilitiesResponse = z.object({
  Capabilities: z.object({ Scope: z.enum(['local', 'global']) }),
});

export type ErrResponse = z.infer<typeof ErrResponse>;
export type MountResponse = z.infer<typeof MountResponse>;
export type GetResponse = z.infer<typeof GetResponse>;
export type ListResponse = z.infer<typeof ListResponse>;
export type CapabilitiesResponse = z.infer<typeof CapabilitiesResponse>;

/** Every endpoint: its path, how its request is decoded, and the shape of a successful reply. */
export const endpoints = {
  '/Plugin.Activate': { request: z.unknown(), response: ActivateResponse },
  '/VolumeDriver.Create': { request: CreateRequest, response: EmptyResponse },
  '/VolumeDriver.Remove': { request: NameRequest, response: EmptyResponse },
  '/VolumeDriver.Mount': { request: MountRequest, response: MountResponse },
  '/VolumeDriver.Unmount': { request: MountRequest, response: EmptyResponse },
  '/VolumeDriver.Path': { request: NameRequest, response: MountResponse },
  '/VolumeDriver.Get': { request: NameRequest, response: GetResponse },
  '/VolumeDriver.List': { request: z.unknown(), response: ListResponse },
  '/VolumeDriver.Capabilities': { request: z.unknown(), response: CapabilitiesResponse },
} as const;
export type Route = keyof typeof endpoints;

/** Turns a zod failure into one sentence a person can act on. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message))
    .join('; ');
}
