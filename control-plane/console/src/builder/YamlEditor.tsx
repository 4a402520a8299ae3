// The builder's YAML editor: CodeMirror 6 with YAML and the `weir.dev/v1` JSON Schema
// (completion, hover and lint from the schema, via codemirror-json-schema), plus the server's
// diagnostics (`pipelines:validate`) and the YAML syntax errors as lint marks and red line
// numbers. Loaded lazily (its own chunk), so the console's first load stays small. Edits from
// the canvas arrive as a new `value` and replace only the changed span, keeping the cursor.
import { useEffect, useRef } from 'react';
import { basicSetup } from 'codemirror';
import { EditorView, GutterMarker, gutterLineClass } from '@codemirror/view';
import { EditorState, RangeSet, StateEffect, StateField, type Extension } from '@codemirror/state';
import { forceLinting, linter, lintGutter, type Diagnostic } from '@codemirror/lint';
import { yamlSchema } from 'codemirror-json-schema/yaml';
import { root } from './schema';

/** A problem to show: 1-based line and column, and its message. */
export type EditorProblem = { line: number; column?: number; message: string };

/**
 * The schema of a Pipeline document: the file schema's `Pipeline` branch with its `$defs`
 * (completion and hover below the top level need the branch, not the `oneOf` of all kinds).
 */
export function pipelineSchema(): Record<string, unknown> {
  const file = root as unknown as { oneOf?: { properties?: { kind?: { const?: string } } }[]; $defs: unknown };
  const branch = file.oneOf?.find((b) => b.properties?.kind?.const === 'Pipeline');
  return branch ? { ...branch, $defs: file.$defs } : (root as unknown as Record<string, unknown>);
}

class BadLine extends GutterMarker {
  elementClass = 'bad';
}
const badLine = new BadLine();

/** Lines with a problem, as gutter classes on their line numbers. */
const setBadLines = StateEffect.define<number[]>();
const badLines = StateField.define<RangeSet<GutterMarker>>({
  create: () => RangeSet.empty,
  update(value, tr) {
    value = value.map(tr.changes);
    for (const e of tr.effects) {
      if (!e.is(setBadLines)) continue;
      const doc = tr.state.doc;
      const lines = [...new Set(e.value.filter((l) => l >= 1 && l <= doc.lines))].sort((a, b) => a - b);
      value = RangeSet.of(lines.map((l) => badLine.range(doc.line(l).from)));
    }
    return value;
  },
  provide: (f) => gutterLineClass.from(f),
});

/** The span that differs between two texts, as one change (keeps the cursor around it). */
export function minimalChange(from: string, to: string): { from: number; to: number; insert: string } | null {
  if (from === to) return null;
  let start = 0;
  while (start < from.length && start < to.length && from[start] === to[start]) start++;
  let endA = from.length;
  let endB = to.length;
  while (endA > start && endB > start && from[endA - 1] === to[endB - 1]) {
    endA--;
    endB--;
  }
  return { from: start, to: endA, insert: to.slice(start, endB) };
}

export default function YamlEditor({ value, onChange, readOnly, problems }: { value: string; onChange: (text: string) => void; readOnly: boolean; problems: EditorProblem[] }) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const onChangeRef = useRef(onChange);
  onChangeRef.current = onChange;
  const problemsRef = useRef(problems);
  problemsRef.current = problems;

  useEffect(() => {
    const ours = linter(
      (v): Diagnostic[] =>
        problemsRef.current.flatMap((p) => {
          if (p.line < 1 || p.line > v.state.doc.lines) return [];
          const line = v.state.doc.line(p.line);
          // From the column to the end of the line; the whole line when the column is at its end.
          const at = line.from + Math.max((p.column ?? 1) - 1, 0);
          const from = at < line.to ? at : line.from;
          return [{ from, to: line.to, severity: 'error', message: p.message, source: 'weir' }];
        }),
      { delay: 50 },
    );
    const extensions: Extension[] = [
      basicSetup,
      yamlSchema(pipelineSchema() as Parameters<typeof yamlSchema>[0]),
      ours,
      lintGutter(),
      badLines,
      EditorState.readOnly.of(readOnly),
      EditorView.editable.of(!readOnly),
      EditorView.contentAttributes.of({ 'aria-label': 'pipeline YAML' }),
      EditorView.updateListener.of((u) => {
        if (u.docChanged) onChangeRef.current(u.state.doc.toString());
      }),
    ];
    const v = new EditorView({ state: EditorState.create({ doc: value, extensions }), parent: host.current! });
    view.current = v;
    // A handle for the browser tests (reading and replacing the whole text).
    Object.assign(host.current!, { weirEditor: { get: () => v.state.doc.toString(), set: (t: string) => v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: t } }) } });
    return () => {
      v.destroy();
      view.current = null;
    };
    // The editor is made once per mount; later values and problems are dispatched below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [readOnly]);

  // Canvas edits: replace only the span that changed.
  useEffect(() => {
    const v = view.current;
    if (!v) return;
    const change = minimalChange(v.state.doc.toString(), value);
    if (change) v.dispatch({ changes: change });
  }, [value]);

  // New problems: lint marks and red line numbers.
  useEffect(() => {
    const v = view.current;
    if (!v) return;
    v.dispatch({ effects: setBadLines.of(problems.map((p) => p.line)) });
    forceLinting(v);
  }, [problems]);

  return <div className="cm-host" ref={host} data-testid="yaml" />;
}
