//! Reads a file's text into documents whose every value and key keeps its line and column.
//! YAML and JSON both go through saphyr's event parser (JSON is YAML's flow style); values
//! become `serde_json::Value`s, positions are kept per JSON pointer.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use serde_json::{Map, Number, Value};

use crate::problem::Problem;

/// Deepest nesting of mappings and lists accepted in a file.
pub(crate) const MAX_DEPTH: usize = 64;
/// Most values a file may expand to (aliases included), against alias bombs.
const MAX_VALUES: usize = 1_000_000;

/// A line and column, both starting at 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    fn of(span: &Span) -> Self {
        Position {
            line: span.start.line(),
            column: span.start.col() + 1,
        }
    }
}

/// One resource's text as a value, with the positions of everything in it.
#[derive(Debug)]
pub(crate) struct Document {
    /// The resource as JSON.
    pub value: Value,
    /// Where the resource starts.
    pub start: Position,
    /// JSON pointer → position of the value there.
    values: HashMap<String, Position>,
    /// JSON pointer → position of the mapping key that names the value.
    keys: HashMap<String, Position>,
    /// Problems found while reading (duplicate keys, non-string keys).
    pub problems: Vec<Problem>,
}

impl Document {
    /// The position of the value at `pointer` (or of its key, when `at_key` and it has one);
    /// a pointer with no position of its own takes its nearest ancestor's.
    pub fn position(&self, pointer: &str, at_key: bool) -> Position {
        let mut p = pointer;
        let mut first = true;
        loop {
            if at_key
                && first
                && let Some(pos) = self.keys.get(p)
            {
                return *pos;
            }
            if let Some(pos) = self.values.get(p) {
                return *pos;
            }
            first = false;
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return self.start,
            }
        }
    }
}

/// A syntax error: where, and what.
#[derive(Debug)]
pub(crate) struct SyntaxError {
    pub position: Position,
    pub message: String,
}

#[derive(Debug, Clone)]
enum Tree {
    Scalar {
        text: String,
        plain: bool,
        tag: Option<String>,
    },
    List(Vec<Node>),
    Mapping(Vec<(Node, Node)>),
}

#[derive(Debug, Clone)]
struct Node {
    tree: Tree,
    position: Position,
    /// Values in this subtree, itself included.
    size: usize,
}

enum Frame {
    List {
        position: Position,
        anchor: usize,
        items: Vec<Node>,
        size: usize,
    },
    Mapping {
        position: Position,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
        size: usize,
    },
}

/// Parses the text into resources: one per YAML document, or one per element when a document
/// is a list (a JSON array of resources). Empty documents are skipped.
pub(crate) fn parse(text: &str) -> Result<Vec<Document>, SyntaxError> {
    let roots = parse_trees(text)?;
    let mut documents = Vec::new();
    for root in roots {
        match root.tree {
            Tree::List(items) => {
                for item in items {
                    documents.push(to_document(item));
                }
            }
            Tree::Scalar {
                ref text,
                plain: true,
                ..
            } if is_null(text) => {}
            _ => documents.push(to_document(root)),
        }
    }
    Ok(documents)
}

fn parse_trees(text: &str) -> Result<Vec<Node>, SyntaxError> {
    let mut builder = TreeBuilder::default();
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|err| SyntaxError {
            position: Position {
                line: err.marker().line(),
                column: err.marker().col() + 1,
            },
            message: format!("YAML syntax error: {}", err.info()),
        })?;
        let position = Position::of(&span);
        let complete = builder.complete(event, position)?;
        builder.check_bounds(position)?;
        if let Some(node) = complete {
            builder.attach(node);
        }
    }
    Ok(builder.roots)
}

/// Builds the trees of a YAML event stream: the collections open on the stack, the anchored
/// nodes for aliases, and the count of values (aliases expanded) that bounds the work.
#[derive(Default)]
struct TreeBuilder {
    roots: Vec<Node>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    total: usize,
}

impl TreeBuilder {
    /// Takes one event: the node it completes, if any (a scalar, an alias, a closed
    /// collection).
    fn complete(&mut self, event: Event, position: Position) -> Result<Option<Node>, SyntaxError> {
        Ok(match event {
            Event::Scalar(value, style, anchor, tag) => {
                let node = Node {
                    tree: Tree::Scalar {
                        text: value.into_owned(),
                        plain: style == ScalarStyle::Plain,
                        tag: tag.map(|t| t.suffix.clone()),
                    },
                    position,
                    size: 1,
                };
                Some(self.completed(node, anchor))
            }
            Event::Alias(anchor) => {
                let Some(node) = self.anchors.get(&anchor) else {
                    return Err(SyntaxError {
                        position,
                        message: "YAML alias refers to an unknown anchor".into(),
                    });
                };
                self.total += node.size;
                Some(node.clone())
            }
            Event::SequenceStart(anchor, _) => {
                self.stack.push(Frame::List {
                    position,
                    anchor,
                    items: Vec::new(),
                    size: 1,
                });
                None
            }
            Event::MappingStart(anchor, _) => {
                self.stack.push(Frame::Mapping {
                    position,
                    anchor,
                    entries: Vec::new(),
                    key: None,
                    size: 1,
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => Some(self.close(position)?),
            Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd
            | Event::Nothing => None,
        })
    }

    /// Counts a completed scalar or collection and remembers it under its anchor.
    fn completed(&mut self, node: Node, anchor: usize) -> Node {
        self.total += 1;
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        node
    }

    /// Closes the innermost open collection.
    fn close(&mut self, position: Position) -> Result<Node, SyntaxError> {
        let (node, anchor) = match self.stack.pop() {
            Some(Frame::List {
                position,
                anchor,
                items,
                size,
            }) => (
                Node {
                    tree: Tree::List(items),
                    position,
                    size,
                },
                anchor,
            ),
            Some(Frame::Mapping {
                position,
                anchor,
                entries,
                size,
                ..
            }) => (
                Node {
                    tree: Tree::Mapping(entries),
                    position,
                    size,
                },
                anchor,
            ),
            None => {
                return Err(SyntaxError {
                    position,
                    message: "YAML syntax error: unbalanced end of collection".into(),
                });
            }
        };
        Ok(self.completed(node, anchor))
    }

    /// Refuses nesting deeper than [`MAX_DEPTH`] and more than [`MAX_VALUES`] values.
    fn check_bounds(&self, position: Position) -> Result<(), SyntaxError> {
        if self.stack.len() > MAX_DEPTH {
            return Err(SyntaxError {
                position,
                message: format!("nesting deeper than {MAX_DEPTH} levels"),
            });
        }
        if self.total > MAX_VALUES {
            return Err(SyntaxError {
                position,
                message: format!(
                    "the file expands to more than {MAX_VALUES} values (aliases included)"
                ),
            });
        }
        Ok(())
    }

    /// Puts a completed node into its parent (an item, a key or a value), or makes it a root.
    fn attach(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.roots.push(node),
            Some(Frame::List { items, size, .. }) => {
                *size += node.size;
                items.push(node);
            }
            Some(Frame::Mapping {
                entries, key, size, ..
            }) => {
                *size += node.size;
                match key.take() {
                    None => *key = Some(node),
                    Some(k) => entries.push((k, node)),
                }
            }
        }
    }
}

fn to_document(root: Node) -> Document {
    let mut doc = Document {
        value: Value::Null,
        start: root.position,
        values: HashMap::new(),
        keys: HashMap::new(),
        problems: Vec::new(),
    };
    let mut pointer = String::new();
    doc.value = convert(root, &mut pointer, &mut doc);
    doc
}

/// Escapes a mapping key for use in a JSON pointer.
pub(crate) fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn convert(node: Node, pointer: &mut String, doc: &mut Document) -> Value {
    doc.values.insert(pointer.clone(), node.position);
    match node.tree {
        Tree::Scalar { text, plain, tag } => scalar(text, plain, tag.as_deref()),
        Tree::List(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&i.to_string());
                out.push(convert(item, pointer, doc));
                pointer.truncate(len);
            }
            Value::Array(out)
        }
        Tree::Mapping(entries) => {
            let mut out = Map::new();
            for (key, value) in entries {
                let name = match key.tree {
                    Tree::Scalar { text, .. } => text,
                    _ => {
                        doc.problems.push(Problem::new(
                            pointer.clone(),
                            "invalid-key",
                            "mapping keys must be strings, not lists or mappings".into(),
                        ));
                        continue;
                    }
                };
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&escape(&name));
                if out.contains_key(&name) {
                    doc.problems.push(
                        Problem::new(
                            pointer.clone(),
                            "duplicate-key",
                            format!(
                                "duplicate key `{name}`; each key may appear once in a mapping"
                            ),
                        )
                        .at_key(),
                    );
                    // Point the problem at the second occurrence.
                    doc.keys.insert(pointer.clone(), key.position);
                    pointer.truncate(len);
                    continue;
                }
                doc.keys.insert(pointer.clone(), key.position);
                let v = convert(value, pointer, doc);
                pointer.truncate(len);
                out.insert(name, v);
            }
            Value::Object(out)
        }
    }
}

fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

/// Resolves a scalar by the YAML 1.2 core schema; quoted scalars are always strings.
fn scalar(text: String, plain: bool, tag: Option<&str>) -> Value {
    if tag == Some("str") || !plain {
        return Value::String(text);
    }
    if is_null(&text) {
        return Value::Null;
    }
    match text.as_str() {
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(&text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = text.parse::<i64>() {
            return Value::Number(i.into());
        }
        if let Ok(u) = text.trim_start_matches('+').parse::<u64>() {
            return Value::Number(u.into());
        }
    }
    if let Some(hex) = text.strip_prefix("0x")
        && let Ok(u) = u64::from_str_radix(hex, 16)
    {
        return Value::Number(u.into());
    }
    if let Some(oct) = text.strip_prefix("0o")
        && let Ok(u) = u64::from_str_radix(oct, 8)
    {
        return Value::Number(u.into());
    }
    let looks_float = digits.bytes().any(|b| b.is_ascii_digit())
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && digits.as_bytes()[0] != b'e'
        && digits.as_bytes()[0] != b'E';
    if looks_float && let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64) {
        return Value::Number(n);
    }
    Value::String(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_positions() {
        let docs = parse("a: 1\nb:\n  - x\n  - {c: 'd'}\n---\n[{\"k\": true}]\n").unwrap();
        assert_eq!(docs.len(), 2);
        let d = &docs[0];
        assert_eq!(d.value["b"][1]["c"], Value::String("d".into()));
        assert_eq!(d.position("/a", false), Position { line: 1, column: 4 });
        assert_eq!(d.position("/a", true), Position { line: 1, column: 1 });
        assert_eq!(d.position("/b/0", false), Position { line: 3, column: 5 });
        assert_eq!(d.position("/b/1/c", false), Position { line: 4, column: 9 });
        assert_eq!(
            d.position("/b/1/missing", false),
            Position { line: 4, column: 5 }
        );
        assert_eq!(docs[1].value["k"], Value::Bool(true));
        assert_eq!(
            docs[1].position("/k", false),
            Position { line: 6, column: 8 }
        );
    }

    #[test]
    fn resolves_scalars() {
        let docs = parse("a: 12\nb: 1.5\nc: '12'\nd: ~\ne: 500ms\nf: -3\ng: 1e3\nh: .5x\ni: e5\n")
            .unwrap();
        let v = &docs[0].value;
        assert_eq!(v["a"], serde_json::json!(12));
        assert_eq!(v["b"], serde_json::json!(1.5));
        assert_eq!(v["c"], serde_json::json!("12"));
        assert_eq!(v["d"], Value::Null);
        assert_eq!(v["e"], serde_json::json!("500ms"));
        assert_eq!(v["f"], serde_json::json!(-3));
        assert_eq!(v["g"], serde_json::json!(1000.0));
        assert_eq!(v["h"], serde_json::json!(".5x"));
        assert_eq!(v["i"], serde_json::json!("e5"));
    }

    #[test]
    fn reports_syntax_errors_with_position() {
        let err = parse("a: 1\nb: [1, 2\n").unwrap_err();
        assert!(err.position.line >= 2, "{err:?}");
        let err = parse("a: 1\n b: 2\n").unwrap_err();
        assert_eq!(err.position.line, 2, "{err:?}");
    }

    #[test]
    fn limits_depth_and_aliases() {
        assert!(parse(&"[".repeat(10_000)).is_err());
        let bomb = "a: &a [1,1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\n";
        assert!(parse(bomb).is_err());
    }

    #[test]
    fn duplicate_keys_are_problems() {
        let docs = parse("a: 1\na: 2\n").unwrap();
        assert_eq!(docs[0].problems.len(), 1);
        assert_eq!(
            docs[0].position("/a", true),
            Position { line: 2, column: 1 }
        );
    }
}
