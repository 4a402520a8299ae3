// Audit log: who did what, when, with what outcome; filter by actor, action and outcome.
import { useState } from 'react';
import { api } from '../api/client';
import { ErrorLine, useLoad } from './common';

export function Audit() {
  const [filter, setFilter] = useState({ actor: '', action: '', outcome: '' });
  const [applied, setApplied] = useState(filter);
  const q = Object.fromEntries(Object.entries(applied).filter(([, v]) => v));
  const page = useLoad(() => api.GET('/api/v1/audit', { params: { query: { ...q, limit: 200 } } }), [JSON.stringify(applied)]);
  // JSON is asked for; the operation's CSV and JSON-lines forms are typed as strings.
  const events = page.data && typeof page.data === 'object' ? page.data.items : [];
  return (
    <div>
      <h1>Audit log</h1>
      <div className="toolbar">
        {(['actor', 'action', 'outcome'] as const).map((k) => (
          <input key={k} aria-label={k} placeholder={k} value={filter[k]} onChange={(e) => setFilter({ ...filter, [k]: e.target.value })} />
        ))}
        <button type="button" onClick={() => setApplied(filter)}>
          Filter
        </button>
        <button
          type="button"
          disabled={!events.length}
          onClick={() => {
            const blob = new Blob([JSON.stringify(events, null, 2)], { type: 'application/json' });
            const a = document.createElement('a');
            a.href = URL.createObjectURL(blob);
            a.download = 'weir-audit.json';
            a.click();
            URL.revokeObjectURL(a.href);
          }}
        >
          Export JSON
        </button>
      </div>
      <ErrorLine error={page.error} />
      <table className="panel">
        <thead>
          <tr>
            <th>at</th>
            <th>actor</th>
            <th>action</th>
            <th>resource</th>
            <th>outcome</th>
            <th>change</th>
          </tr>
        </thead>
        <tbody>
          {events.map((e) => (
            <tr key={e.id}>
              <td className="small">{e.at}</td>
              <td>{e.actor}</td>
              <td>{e.action}</td>
              <td>{e.resource}</td>
              <td>{e.outcome}</td>
              <td>
                {'diff' in e && e.diff ? (
                  <details>
                    <summary>before / after</summary>
                    <pre className="diff">{String(e.diff)}</pre>
                  </details>
                ) : (
                  ''
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
