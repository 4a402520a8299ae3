//! Typed columns built straight from the path values of Avro and Protobuf payloads read
//! without their JSON text ([`super::avro_json::Node::read_typed`],
//! [`super::protobuf_paths`]): the columns the JSON decoder would
//! build from the same payloads' texts, without writing or parsing the values as text.

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, NullArray, StringBuilder,
};
use std::sync::Arc;

/// A path's value read straight into its type, for a typed column (see [`super::avro_json::Node::read_typed`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Typed<'v> {
    Null,
    Float(f64),
    Int(i64),
    Text(&'v str),
    Bool(bool),
}

/// The one primitive type a path slot's values have in every payload of a schema (`Null`:
/// only nulls, or a path the schema does not have).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leaf {
    Null,
    Float,
    Int,
    Text,
    Bool,
}

impl Leaf {
    /// The two types one slot takes (as union branches or on several paths), when they agree.
    pub(super) fn merge(self, other: Leaf) -> Option<Leaf> {
        match (self, other) {
            (a, Leaf::Null) => Some(a),
            (Leaf::Null, b) => Some(b),
            (a, b) => (a == b).then_some(a),
        }
    }
}

/// One path slot's column being built.
pub(crate) struct TypedColumn {
    values: Values,
    len: usize,
    nulls: usize,
}

enum Values {
    /// A path that only ever holds null (or that the schema does not have).
    Null,
    Float(Float64Builder),
    Int(Int64Builder),
    Text(StringBuilder),
    Bool(BooleanBuilder),
}

impl TypedColumn {
    /// A column for up to `rows` values of type `leaf`.
    pub(crate) fn new(leaf: Leaf, rows: usize) -> TypedColumn {
        let values = match leaf {
            Leaf::Null => Values::Null,
            Leaf::Float => Values::Float(Float64Builder::with_capacity(rows)),
            Leaf::Int => Values::Int(Int64Builder::with_capacity(rows)),
            Leaf::Text => Values::Text(StringBuilder::with_capacity(rows, rows * 12)),
            Leaf::Bool => Values::Bool(BooleanBuilder::with_capacity(rows)),
        };
        TypedColumn {
            values,
            len: 0,
            nulls: 0,
        }
    }

    /// Appends one value; `None` when it is not of the column's type.
    #[inline]
    pub(crate) fn push(&mut self, value: Typed<'_>) -> Option<()> {
        match (&mut self.values, value) {
            (Values::Null, Typed::Null) => {}
            (Values::Float(b), Typed::Null) => b.append_null(),
            (Values::Int(b), Typed::Null) => b.append_null(),
            (Values::Text(b), Typed::Null) => b.append_null(),
            (Values::Bool(b), Typed::Null) => b.append_null(),
            (Values::Float(b), Typed::Float(v)) => b.append_value(v),
            (Values::Int(b), Typed::Int(v)) => b.append_value(v),
            (Values::Text(b), Typed::Text(v)) => b.append_value(v),
            (Values::Bool(b), Typed::Bool(v)) => b.append_value(v),
            _ => return None,
        }
        self.len += 1;
        self.nulls += usize::from(value == Typed::Null);
        Some(())
    }

    /// The column, typed as the JSON decoder types the same values: all null is a null
    /// column. `None` when texts or booleans come with nulls: the JSON decoder puts those
    /// messages in frames of their own (a null typed as text fails where a bare null passes),
    /// which only it does.
    pub(crate) fn finish(self) -> Option<ArrayRef> {
        if self.nulls == self.len {
            return Some(Arc::new(NullArray::new(self.len)));
        }
        Some(match self.values {
            Values::Text(_) | Values::Bool(_) if self.nulls > 0 => return None,
            Values::Null => Arc::new(NullArray::new(self.len)),
            Values::Float(mut b) => Arc::new(b.finish()),
            Values::Int(mut b) => Arc::new(b.finish()),
            Values::Text(mut b) => Arc::new(b.finish()),
            Values::Bool(mut b) => Arc::new(b.finish()),
        })
    }
}
