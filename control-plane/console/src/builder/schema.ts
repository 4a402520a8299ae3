// The `weir.dev/v1` JSON Schema (pipelines/schema/weir.v1.schema.json, generated from the
// spec types) and helpers over it: the palette's node kinds and the inspector's forms come
// from here, so a node kind added to the format appears without console changes.
import raw from '../../../../pipelines/schema/weir.v1.schema.json';

export type JsonSchema = {
  type?: string | string[];
  description?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  additionalProperties?: boolean | JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  enum?: unknown[];
  const?: unknown;
  $ref?: string;
  default?: unknown;
  format?: string;
  minimum?: number;
  maximum?: number;
};

export const root = raw as unknown as JsonSchema & { $defs: Record<string, JsonSchema> };

/** Fields of a spec node that are not its kind: the id and the edges. */
const NOT_KINDS = new Set(['id', 'next', 'default']);

/** Follows `$ref`s and drops the `null` branch of optional values. */
export function resolve(s: JsonSchema | undefined, defs = root.$defs): JsonSchema {
  let cur: JsonSchema = s ?? {};
  for (let i = 0; i < 20; i++) {
    if (cur.$ref) {
      const name = cur.$ref.replace('#/$defs/', '');
      cur = { ...defs[name], description: cur.description ?? defs[name]?.description };
      continue;
    }
    const alts = cur.anyOf ?? cur.oneOf;
    if (alts) {
      const nonNull = alts.filter((a) => a.type !== 'null');
      if (nonNull.length === 1) {
        cur = { ...nonNull[0], description: cur.description ?? nonNull[0].description };
        continue;
      }
    }
    if (Array.isArray(cur.type)) {
      const t = cur.type.filter((x) => x !== 'null');
      if (t.length === 1) cur = { ...cur, type: t[0] };
    }
    break;
  }
  return cur;
}

/** The node kinds of the format, in the schema's order. */
export function nodeKinds(): string[] {
  return Object.keys(root.$defs.Node?.properties ?? {}).filter((k) => !NOT_KINDS.has(k));
}

/** The schema of a node kind's value. */
export function kindSchema(kind: string): JsonSchema {
  return resolve(root.$defs.Node?.properties?.[kind]);
}

/** A starting value for a new node of a kind (the required fields, filled with placeholders). */
export function starter(kind: string): unknown {
  return sample(kindSchema(kind));
}

function sample(s: JsonSchema): unknown {
  const r = resolve(s);
  if (r.enum?.length) return r.enum[0];
  if (r.const !== undefined) return r.const;
  if (r.anyOf || r.oneOf) return sample((r.anyOf ?? r.oneOf)![0]);
  switch (r.type) {
    case 'string':
      return 'true';
    case 'integer':
    case 'number':
      return r.minimum ?? 0;
    case 'boolean':
      return false;
    case 'array':
      return [sample(r.items ?? {})];
    case 'object': {
      const out: Record<string, unknown> = {};
      for (const k of r.required ?? []) out[k] = sample(r.properties?.[k] ?? {});
      return out;
    }
    default:
      return null;
  }
}

/** Short help of a node kind (its description's first sentence). */
export function kindHelp(kind: string): string {
  const d = root.$defs.Node?.properties?.[kind]?.description ?? kindSchema(kind).description ?? '';
  return d.split('\n')[0];
}
