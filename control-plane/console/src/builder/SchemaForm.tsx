// A form generated from a JSON Schema: strings, numbers, booleans, enums, objects with fixed
// properties, maps (additionalProperties) and arrays. The inspector renders every node kind
// with it, so kinds added to the format get a form without console changes.
import { useState } from 'react';
import { resolve, type JsonSchema } from './schema';

interface FieldProps {
  schema: JsonSchema;
  value: unknown;
  onChange: (v: unknown) => void;
  /** Label and accessible name. */
  label: string;
  /** Properties not to show (edited elsewhere, e.g. a route rule's `next` is an edge). */
  hide?: string[];
  readOnly?: boolean;
}

function enumOptions(s: JsonSchema): string[] | undefined {
  if (s.enum) return s.enum.map(String);
  const alts = s.oneOf ?? s.anyOf;
  if (alts && alts.every((a) => a.const !== undefined)) return alts.map((a) => String(a.const));
  return undefined;
}

export function SchemaField({ schema, value, onChange, label, hide = [], readOnly }: FieldProps) {
  const s = resolve(schema);
  const help = s.description?.split('\n')[0];
  const options = enumOptions(s);
  if (options) {
    return (
      <label className="field" title={help}>
        <span>{label}</span>
        <select aria-label={label} disabled={readOnly} value={value === undefined || value === null ? '' : String(value)} onChange={(e) => onChange(e.target.value === '' ? undefined : e.target.value)}>
          <option value="">—</option>
          {options.map((o) => (
            <option key={o} value={o}>
              {o}
            </option>
          ))}
        </select>
      </label>
    );
  }
  switch (s.type) {
    case 'string':
      return (
        <label className="field" title={help}>
          <span>{label}</span>
          <input aria-label={label} readOnly={readOnly} value={value === undefined || value === null ? '' : String(value)} placeholder={help} onChange={(e) => onChange(e.target.value)} />
        </label>
      );
    case 'integer':
    case 'number':
      return (
        <label className="field" title={help}>
          <span>{label}</span>
          <input aria-label={label} type="number" readOnly={readOnly} value={value === undefined || value === null ? '' : String(value)} onChange={(e) => onChange(e.target.value === '' ? undefined : Number(e.target.value))} />
        </label>
      );
    case 'boolean':
      return (
        <label className="field check" title={help}>
          <input aria-label={label} type="checkbox" disabled={readOnly} checked={value === true} onChange={(e) => onChange(e.target.checked ? true : undefined)} />
          <span>{label}</span>
        </label>
      );
    case 'array':
      return <ArrayField schema={s} value={value} onChange={onChange} label={label} readOnly={readOnly} />;
    case 'object':
      if (s.properties) return <ObjectField schema={s} value={value} onChange={onChange} label={label} hide={hide} readOnly={readOnly} />;
      return <MapField schema={s} value={value} onChange={onChange} label={label} readOnly={readOnly} />;
    default:
      // A union the form cannot split (e.g. one id or several): edit it as JSON text.
      return <JsonField value={value} onChange={onChange} label={label} help={help} readOnly={readOnly} />;
  }
}

function ObjectField({ schema, value, onChange, label, hide = [], readOnly }: FieldProps) {
  const obj = (value && typeof value === 'object' && !Array.isArray(value) ? value : {}) as Record<string, unknown>;
  const required = new Set(schema.required ?? []);
  const set = (k: string, v: unknown) => {
    const next = { ...obj };
    if (v === undefined || v === '') delete next[k];
    else next[k] = v;
    onChange(next);
  };
  return (
    <fieldset className="object" aria-label={label}>
      <legend>{label}</legend>
      {Object.entries(schema.properties ?? {})
        .filter(([k]) => !hide.includes(k))
        .map(([k, sub]) => {
          const field = <SchemaField key={k} schema={sub} value={obj[k]} onChange={(v) => set(k, v)} label={required.has(k) ? `${k} *` : k} readOnly={readOnly} />;
          const r = resolve(sub);
          // An optional group of settings (e.g. publish's registry `schema`) shows as a button
          // until it is added, so an unset group is not mistaken for one to fill in.
          if (required.has(k) || r.type !== 'object' || !r.properties) return field;
          if (obj[k] === undefined) {
            return (
              <button key={k} type="button" className="optional" disabled={readOnly} title={r.description?.split('\n')[0]} onClick={() => set(k, blank(r))}>
                add {k}
              </button>
            );
          }
          return (
            <div key={k} className="optional">
              {field}
              <button type="button" disabled={readOnly} onClick={() => set(k, undefined)}>
                remove {k}
              </button>
            </div>
          );
        })}
    </fieldset>
  );
}

/** A new optional group: its required fields, empty. */
function blank(s: JsonSchema): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of s.required ?? []) {
    const t = resolve(s.properties?.[k]).type;
    out[k] = t === 'string' ? '' : t === 'object' ? {} : t === 'array' ? [] : null;
  }
  return out;
}

function MapField({ schema, value, onChange, label, readOnly }: FieldProps) {
  const obj = (value && typeof value === 'object' && !Array.isArray(value) ? value : {}) as Record<string, unknown>;
  const valueSchema = typeof schema.additionalProperties === 'object' ? schema.additionalProperties : { type: 'string' };
  const [newKey, setNewKey] = useState('');
  const entries = Object.entries(obj);
  const rename = (from: string, to: string) => {
    const next: Record<string, unknown> = {};
    for (const [k, v] of entries) next[k === from ? to : k] = v;
    onChange(next);
  };
  return (
    <fieldset className="map" aria-label={label}>
      <legend>{label}</legend>
      {entries.map(([k, v]) => (
        <div className="map-row" key={k}>
          <input aria-label={`${label} key`} readOnly={readOnly} defaultValue={k} onBlur={(e) => e.target.value && e.target.value !== k && rename(k, e.target.value)} />
          <SchemaField schema={valueSchema} value={v} onChange={(nv) => onChange({ ...obj, [k]: nv })} label={k} readOnly={readOnly} />
          {!readOnly && (
            <button type="button" aria-label={`remove ${k}`} onClick={() => onChange(Object.fromEntries(entries.filter(([x]) => x !== k)))}>
              ×
            </button>
          )}
        </div>
      ))}
      {!readOnly && (
        <div className="map-row">
          <input aria-label={`new ${label} key`} placeholder="new key" value={newKey} onChange={(e) => setNewKey(e.target.value)} />
          <button
            type="button"
            disabled={!newKey || newKey in obj}
            onClick={() => {
              onChange({ ...obj, [newKey]: resolve(valueSchema).type === 'string' ? '' : null });
              setNewKey('');
            }}
          >
            add
          </button>
        </div>
      )}
    </fieldset>
  );
}

function ArrayField({ schema, value, onChange, label, readOnly }: FieldProps) {
  const list = Array.isArray(value) ? value : [];
  const item = resolve(schema.items);
  const blank = item.type === 'object' ? {} : item.type === 'string' ? '' : null;
  return (
    <fieldset className="array" aria-label={label}>
      <legend>{label}</legend>
      {list.map((v, i) => (
        <div className="array-row" key={i}>
          <SchemaField schema={item} value={v} onChange={(nv) => onChange(list.map((x, j) => (j === i ? nv : x)))} label={`${label} ${i + 1}`} hide={['next']} readOnly={readOnly} />
          {!readOnly && (
            <button type="button" aria-label={`remove ${label} ${i + 1}`} onClick={() => onChange(list.filter((_, j) => j !== i))}>
              ×
            </button>
          )}
        </div>
      ))}
      {!readOnly && (
        <button type="button" onClick={() => onChange([...list, blank])}>
          add {label}
        </button>
      )}
    </fieldset>
  );
}

function JsonField({ value, onChange, label, help, readOnly }: { value: unknown; onChange: (v: unknown) => void; label: string; help?: string; readOnly?: boolean }) {
  const [text, setText] = useState(value === undefined ? '' : JSON.stringify(value));
  const [bad, setBad] = useState(false);
  return (
    <label className="field" title={help}>
      <span>{label} (JSON)</span>
      <input
        aria-label={label}
        aria-invalid={bad}
        readOnly={readOnly}
        value={text}
        onChange={(e) => {
          setText(e.target.value);
          try {
            onChange(e.target.value === '' ? undefined : JSON.parse(e.target.value));
            setBad(false);
          } catch {
            setBad(true);
          }
        }}
      />
    </label>
  );
}
