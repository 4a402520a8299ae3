//! Diagnostics: every problem of a pipeline file with its file, line, column, JSON pointer
//! and stable code. `weir validate`, the control plane's API and the console all show these.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One problem in a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// The file name given to the loader.
    pub file: String,
    /// Line, from 1 (0 when the problem concerns the whole file, e.g. it cannot be read).
    pub line: usize,
    /// Column, from 1 (0 with line 0).
    pub column: usize,
    /// Index of the resource in the file (YAML document or JSON array element), from 0.
    pub document: usize,
    /// JSON pointer to the offending value within its resource, e.g. `/spec/nodes/2/next`;
    /// empty for the whole resource or file.
    pub path: String,
    /// Stable machine-readable code, e.g. `unknown-field`, `dangling-next`,
    /// `invalid-expression`, `yaml-syntax`.
    pub code: String,
    /// What is wrong, and what to do about it.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        }
    }
}

/// Every problem found in a file (never empty when returned as an error).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// The diagnostics, in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    /// How many problems there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Diagnostics {
    /// One line per problem: `file:line:col: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}
