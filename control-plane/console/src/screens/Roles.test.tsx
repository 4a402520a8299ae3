// Custom roles: grants typed as a list, and the panel shows built-in and custom roles with
// a delete action only for custom ones.
import { describe, expect, it } from 'vitest';
import { parseGrants } from './Roles';

describe('roles', () => {
  it('reads grants separated by commas, spaces or new lines', () => {
    expect(parseGrants('pipelines:read, messages:read\n dlq:redrive  ')).toEqual(['pipelines:read', 'messages:read', 'dlq:redrive']);
    expect(parseGrants(' ,\n')).toEqual([]);
  });
});
