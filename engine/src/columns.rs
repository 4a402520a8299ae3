//! The columns a compiled pipeline reads: message metadata (`subject`, `stream`, `seq`,
//! `timestamp`), the raw payload (`data`), payload paths (`data.a.b`, `data['a-b']`) and
//! headers (`headers['X-Name']`). The compiler collects them once; every batch builds only these.

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use indexmap::IndexSet;
use std::collections::HashMap;
use std::sync::Arc;
use weir_pipelines::FieldType;

/// Where a column's values come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ColumnSource {
    /// The message subject.
    Subject,
    /// The source stream name.
    Stream,
    /// The stream sequence.
    Seq,
    /// The publish time (timestamp, microseconds, UTC).
    Timestamp,
    /// The whole payload as text (for the JSON functions, e.g. `json_get_str(data, 'a')`).
    Payload,
    /// A path into the JSON payload.
    Path(Vec<String>),
    /// A header value, matched case-insensitively (name stored lower-case).
    Header(String),
}

impl ColumnSource {
    /// The column's name in the batch schema and in error messages.
    pub(crate) fn name(&self) -> String {
        match self {
            ColumnSource::Subject => "subject".into(),
            ColumnSource::Stream => "stream".into(),
            ColumnSource::Seq => "seq".into(),
            ColumnSource::Timestamp => "timestamp".into(),
            ColumnSource::Payload => "data".into(),
            ColumnSource::Path(path) => path_display(path),
            ColumnSource::Header(name) => format!("headers['{name}']"),
        }
    }
}

/// `data.a.b`, or `data['a-b']` for segments that are not plain identifiers.
pub(crate) fn path_display(path: &[String]) -> String {
    let mut out = String::from("data");
    for seg in path {
        let plain = !seg.is_empty()
            && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !seg.starts_with(|c: char| c.is_ascii_digit());
        if plain {
            out.push('.');
            out.push_str(seg);
        } else {
            out.push_str("['");
            out.push_str(&seg.replace('\'', "''"));
            out.push_str("']");
        }
    }
    out
}

/// Splits a field path as written in a spec (`customer.id`) into segments.
pub(crate) fn split_path(path: &str) -> Vec<String> {
    let path = path.strip_prefix("data.").unwrap_or(path);
    path.split('.').map(str::to_string).collect()
}

/// The Arrow type of a declared field.
pub(crate) fn field_type_to_arrow(t: FieldType) -> DataType {
    match t {
        FieldType::String | FieldType::Json => DataType::Utf8,
        FieldType::Int64 => DataType::Int64,
        FieldType::Float64 => DataType::Float64,
        FieldType::Boolean => DataType::Boolean,
        FieldType::Timestamp => timestamp_type(),
    }
}

/// The type of the `timestamp` column and of declared timestamps.
pub(crate) fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The ordered set of columns a pipeline reads, with the declared type of payload paths.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    columns: IndexSet<ColumnSource>,
    declared: Vec<Option<FieldType>>,
    /// Where each column is first read: a JSON pointer into the pipeline resource.
    first_read: Vec<String>,
    /// The pointer of the expression being compiled (recorded for the columns it adds).
    pub(crate) reading: String,
    /// Types of payload paths from the source's JSON Schema, given to those paths when an
    /// expression first reads them (a path nobody reads gets no column).
    typed_by_schema: HashMap<Vec<String>, FieldType>,
}

impl Catalog {
    /// Adds a column (once) and returns its index.
    pub(crate) fn add(&mut self, source: ColumnSource) -> usize {
        let typed = match &source {
            ColumnSource::Path(path) => self.typed_by_schema.get(path).copied(),
            _ => None,
        };
        let (idx, inserted) = self.columns.insert_full(source);
        if inserted {
            self.declared.push(typed);
            self.first_read.push(self.reading.clone());
        }
        idx
    }

    /// Types payload paths by the source's schema ([`crate::json_types`]), as if declared, when
    /// they are read.
    pub(crate) fn type_by_schema(&mut self, types: HashMap<Vec<String>, FieldType>) {
        self.typed_by_schema = types;
    }

    /// Adds a declared payload field.
    pub(crate) fn declare(&mut self, path: Vec<String>, t: FieldType) {
        let idx = self.add(ColumnSource::Path(path));
        self.declared[idx] = Some(t);
    }

    /// Index of a column, if present.
    pub(crate) fn index_of(&self, source: &ColumnSource) -> Option<usize> {
        self.columns.get_index_of(source)
    }

    /// All columns in order.
    pub(crate) fn columns(&self) -> impl Iterator<Item = (usize, &ColumnSource)> {
        self.columns.iter().enumerate()
    }

    /// Number of columns.
    pub(crate) fn len(&self) -> usize {
        self.columns.len()
    }

    /// The declared type of column `idx` (payload paths from `source.fields`).
    pub(crate) fn declared(&self, idx: usize) -> Option<FieldType> {
        self.declared[idx]
    }

    /// Where column `idx` is first read (a JSON pointer; empty for declared fields).
    pub(crate) fn first_read(&self, idx: usize) -> &str {
        &self.first_read[idx]
    }

    /// Indices of the payload path columns, with their paths.
    pub(crate) fn paths(&self) -> Vec<(usize, &[String])> {
        self.columns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c {
                ColumnSource::Path(p) => Some((i, p.as_slice())),
                _ => None,
            })
            .collect()
    }

    /// The batch schema for columns of the given types (types of payload paths vary per
    /// batch when they are not declared).
    pub(crate) fn schema(&self, types: &[DataType]) -> SchemaRef {
        let fields: Vec<Field> = self
            .columns
            .iter()
            .zip(types)
            .map(|(c, t)| Field::new(c.name(), t.clone(), true))
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// The types columns have before any batch is seen: declared or fixed types, and `Null`
    /// for undeclared payload paths (used to check expressions at compile time).
    pub(crate) fn compile_time_types(&self) -> Vec<DataType> {
        self.columns
            .iter()
            .zip(&self.declared)
            .map(|(c, d)| match (c, d) {
                (_, Some(t)) => field_type_to_arrow(*t),
                (ColumnSource::Subject | ColumnSource::Stream | ColumnSource::Payload, _) => {
                    DataType::Utf8
                }
                (ColumnSource::Header(_), _) => DataType::Utf8,
                (ColumnSource::Seq, _) => DataType::UInt64,
                (ColumnSource::Timestamp, _) => timestamp_type(),
                (ColumnSource::Path(_), None) => DataType::Null,
            })
            .collect()
    }
}
