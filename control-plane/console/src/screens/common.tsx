// Small shared pieces of the operations screens: loading a call's data with its error.
import { useCallback, useEffect, useState } from 'react';
import { problemText } from '../api/client';

type Result<T> = { data?: T; error?: unknown; response: Response };

/** Runs `call` now and when `reload` is called (and every `pollMs`, when given). */
export function useLoad<T>(call: () => Promise<Result<T>>, deps: unknown[], pollMs?: number) {
  const [data, setData] = useState<T | undefined>();
  const [error, setError] = useState<string | null>(null);
  const [tick, setTick] = useState(0);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  useEffect(() => {
    let stop = false;
    const run = async () => {
      const r = await call();
      if (stop) return;
      if (r.data !== undefined) {
        setData(r.data);
        setError(null);
      } else setError(problemText(r.error, r.response));
    };
    void run();
    const t = pollMs ? setInterval(run, pollMs) : undefined;
    return () => {
      stop = true;
      if (t) clearInterval(t);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);
  return { data, error, reload };
}

export function ErrorLine({ error }: { error: string | null | undefined }) {
  return error ? (
    <p className="error" role="alert">
      {error}
    </p>
  ) : null;
}

export function pretty(text: string | null | undefined): string {
  if (text == null) return '(binary payload)';
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}
