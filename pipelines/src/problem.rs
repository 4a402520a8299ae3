//! A problem found in a resource, located by a JSON pointer; the loader turns it into a
//! [`crate::Diagnostic`] with the file, line and column of that pointer.

/// One problem in a resource, before it is given a line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// JSON pointer to the offending value, e.g. `/spec/nodes/2/next`.
    pub path: String,
    /// Stable code, e.g. `dangling-next`.
    pub code: &'static str,
    /// What is wrong and what to do.
    pub message: String,
    /// Whether the position is the key naming the value rather than the value itself.
    pub at_key: bool,
}

impl Problem {
    /// A problem at the value under `path`.
    pub fn new(path: impl Into<String>, code: &'static str, message: String) -> Self {
        Problem {
            path: path.into(),
            code,
            message,
            at_key: false,
        }
    }

    /// Points the problem at the key rather than the value.
    pub fn at_key(mut self) -> Self {
        self.at_key = true;
        self
    }
}
