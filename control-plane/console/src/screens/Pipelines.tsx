// The pipeline list: name, version, labels, and a way into the builder.
import { api } from '../api/client';
import { Link, navigate } from '../router';
import { useCan } from '../session';
import { ErrorLine, useLoad } from './common';

export function Pipelines() {
  const can = useCan();
  const list = useLoad(() => api.GET('/api/v1/pipelines'), []);
  return (
    <div>
      <h1>Pipelines</h1>
      <div className="toolbar">
        {can('pipelines', 'create') && (
          <button type="button" className="primary" onClick={() => navigate('/pipelines/new')}>
            New pipeline
          </button>
        )}
      </div>
      <ErrorLine error={list.error} />
      <table className="panel">
        <thead>
          <tr>
            <th>name</th>
            <th>version</th>
            <th>parallelism</th>
            <th>labels</th>
            <th>updated</th>
          </tr>
        </thead>
        <tbody>
          {(list.data?.items ?? []).map((p) => (
            <tr key={p.name}>
              <td>
                <Link to={`/pipelines/${encodeURIComponent(p.name)}`}>{p.name}</Link>
              </td>
              <td>v{p.version}</td>
              <td>{p.parallelism}</td>
              <td>{Object.entries(p.labels).map(([k, v]) => `${k}=${v}`).join(', ')}</td>
              <td className="muted">{p.updated_at}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
