// Finds keys in a value that its zod schema does not declare. Plain `z.object` strips unknown keys
// silently, but a misspelt param in pipeline.yaml must be an error (with a hint), whatever object
// flavour a kind's author chose; only `z.looseObject` (an explicit catch-all) accepts extras.
import { z } from 'zod';
import type { DocPath } from './yaml-locations.js';

export interface UnknownKey {
  /** Path of the map holding the key. */
  path: DocPath;
  key: string;
  /** Keys that are allowed there. */
  known: string[];
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The object schema under wrappers (optional, default, pipe input...), if any. */
function unwrapObject(schema: z.core.$ZodType): z.core.$ZodObject | undefined {
  const s = schema as z.core.$ZodTypes;
  const def = s._zod.def;
  switch (def.type) {
    case 'object':
      return s as z.core.$ZodObject;
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
    case 'readonly':
    case 'nonoptional':
    case 'catch':
      return unwrapObject(def.innerType);
    case 'pipe':
      return unwrapObject(def.in);
    case 'lazy':
      return unwrapObject(def.getter());
    default:
      return undefined;
  }
}

/** The union member a value belongs to: by discriminator if there is one, else the first that parses. */
function pickUnionOption(def: z.core.$ZodUnionDef | z.core.$ZodDiscriminatedUnionDef, value: unknown): z.core.$ZodType | undefined {
  if ('discriminator' in def && isRecord(value)) {
    const discriminator = def.discriminator;
    return def.options.find((option) => {
      const shape = unwrapObject(option)?._zod.def.shape;
      const field = shape?.[discriminator];
      return field !== undefined && z.safeParse(field, value[discriminator]).success;
    });
  }
  return def.options.find((option) => z.safeParse(option, value).success);
}

export function findUnknownKeys(schema: z.core.$ZodType, value: unknown, path: DocPath = []): UnknownKey[] {
  if (value === undefined || value === null) return [];
  const s = schema as z.core.$ZodTypes;
  const def = s._zod.def;
  switch (def.type) {
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
    case 'readonly':
    case 'nonoptional':
    case 'catch':
      return findUnknownKeys(def.innerType, value, path);
    case 'pipe':
      return findUnknownKeys(def.in, value, path);
    case 'lazy':
      return findUnknownKeys(def.getter(), value, path);
    case 'object': {
      if (!isRecord(value)) return [];
      const shape = def.shape;
      const known = Object.keys(shape);
      const catchall = def.catchall;
      const strict = catchall === undefined || catchall._zod.def.type === 'never';
      const found: UnknownKey[] = [];
      for (const [key, item] of Object.entries(value)) {
        if (Object.hasOwn(shape, key)) found.push(...findUnknownKeys(shape[key], item, [...path, key]));
        else if (strict) found.push({ path, key, known });
        else if (catchall) found.push(...findUnknownKeys(catchall, item, [...path, key]));
      }
      return found;
    }
    case 'array':
      return Array.isArray(value) ? value.flatMap((item, i) => findUnknownKeys(def.element, item, [...path, i])) : [];
    case 'tuple':
      if (!Array.isArray(value)) return [];
      return value.flatMap((item, i) => {
        const itemSchema = def.items[i] ?? def.rest;
        return itemSchema ? findUnknownKeys(itemSchema, item, [...path, i]) : [];
      });
    case 'record':
      return isRecord(value) ? Object.entries(value).flatMap(([k, v]) => findUnknownKeys(def.valueType, v, [...path, k])) : [];
    case 'union': {
      const option = pickUnionOption(def, value);
      return option ? findUnknownKeys(option, value, path) : [];
    }
    default:
      return [];
  }
}
