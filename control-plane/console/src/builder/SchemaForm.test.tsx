// The inspector's forms come from the format's JSON Schema: every node kind gets a form, and
// editing a field changes the node's value.
import { describe, expect, it, vi, afterEach } from 'vitest';
import { cleanup, fireEvent, render, screen } from '@testing-library/react';
import { SchemaField } from './SchemaForm';
import { kindSchema, nodeKinds, starter } from './schema';

afterEach(cleanup);

describe('schema-driven inspector', () => {
  it('the palette lists every node kind of the schema', () => {
    expect(nodeKinds()).toEqual(expect.arrayContaining(['filter', 'map', 'route', 'publish', 'split', 'drop']));
    expect(nodeKinds()).not.toContain('id');
    expect(nodeKinds()).not.toContain('next');
  });

  for (const kind of nodeKinds()) {
    it(`renders a form for ${kind} from its starter value`, () => {
      const { container } = render(<SchemaField schema={kindSchema(kind)} value={starter(kind)} label={kind} onChange={() => {}} />);
      expect(container.querySelectorAll('input, select, button').length).toBeGreaterThan(0);
    });
  }

  it('publish: the subject is a required text field and headers a map', () => {
    const onChange = vi.fn();
    render(<SchemaField schema={kindSchema('publish')} value={{ subject: 'out.a', headers: { 'X-A': '1' } }} label="publish" onChange={onChange} />);
    // The registry `schema` is optional: a button until added, so one `subject` field.
    const subject = screen.getByLabelText('subject *') as HTMLInputElement;
    expect(subject.value).toBe('out.a');
    fireEvent.change(subject, { target: { value: 'out.{data.region}' } });
    expect(onChange).toHaveBeenLastCalledWith({ subject: 'out.{data.region}', headers: { 'X-A': '1' } });
    fireEvent.change(screen.getByLabelText('X-A'), { target: { value: 'high' } });
    expect(onChange).toHaveBeenLastCalledWith({ subject: 'out.a', headers: { 'X-A': 'high' } });
  });

  it('publish: the optional registry `schema` is added and removed as a whole', () => {
    const onChange = vi.fn();
    const { rerender } = render(<SchemaField schema={kindSchema('publish')} value={{ subject: 'out.a' }} label="publish" onChange={onChange} />);
    expect(screen.queryByRole('group', { name: 'schema' })).toBeNull();
    fireEvent.click(screen.getByText('add schema'));
    expect(onChange).toHaveBeenLastCalledWith({ subject: 'out.a', schema: { subject: '' } });
    rerender(<SchemaField schema={kindSchema('publish')} value={{ subject: 'out.a', schema: { subject: 'orders-value' } }} label="publish" onChange={onChange} />);
    expect(screen.getByRole('group', { name: 'schema' })).toBeTruthy();
    expect((screen.getAllByLabelText('subject *')[1] as HTMLInputElement).value).toBe('orders-value');
    fireEvent.click(screen.getByText('remove schema'));
    expect(onChange).toHaveBeenLastCalledWith({ subject: 'out.a' });
  });

  it('map: adding a `set` entry and a `remove` item', () => {
    const onChange = vi.fn();
    render(<SchemaField schema={kindSchema('map')} value={{}} label="map" onChange={onChange} />);
    fireEvent.change(screen.getByLabelText('new set key'), { target: { value: 'tier' } });
    fireEvent.click(screen.getAllByText('add')[0]);
    expect(onChange).toHaveBeenLastCalledWith({ set: { tier: '' } });
    fireEvent.click(screen.getByText('add remove'));
    expect(onChange).toHaveBeenLastCalledWith({ remove: [''] });
  });

  it('route: rules edit `when` and `stop`, never `next` (an edge on the canvas)', () => {
    const onChange = vi.fn();
    render(<SchemaField schema={kindSchema('route')} value={[{ when: 'true', name: 'all' }]} label="route" onChange={onChange} />);
    expect(screen.queryByLabelText(/^next/)).toBeNull();
    fireEvent.change(screen.getByLabelText('when *'), { target: { value: 'data.x > 1' } });
    expect(onChange).toHaveBeenLastCalledWith([{ when: 'data.x > 1', name: 'all' }]);
    fireEvent.click(screen.getByLabelText('stop'));
    expect(onChange).toHaveBeenLastCalledWith([{ when: 'true', name: 'all', stop: true }]);
  });

  it('enums become selects (map.cast types)', () => {
    const onChange = vi.fn();
    render(<SchemaField schema={kindSchema('map')} value={{ cast: { amount: 'int64' } }} label="map" onChange={onChange} />);
    const select = screen.getByLabelText('amount') as HTMLSelectElement;
    expect(select.value).toBe('int64');
    expect([...select.options].map((o) => o.value)).toEqual(expect.arrayContaining(['string', 'float64', 'timestamp']));
    fireEvent.change(select, { target: { value: 'float64' } });
    expect(onChange).toHaveBeenLastCalledWith({ cast: { amount: 'float64' } });
  });

  it('read-only for a viewer: no add or remove buttons', () => {
    render(<SchemaField schema={kindSchema('map')} value={{ set: { a: '1' } }} label="map" onChange={() => {}} readOnly />);
    expect(screen.queryByText(/^add/)).toBeNull();
    expect(screen.queryByLabelText('remove a')).toBeNull();
  });
});
