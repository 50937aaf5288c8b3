//! Byte spans into a source file, and the source file itself.

use std::sync::Arc;

use miette::{NamedSource, SourceSpan};

/// A half-open byte range `start..end` into one source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// A span from `start` to `end`.
    #[must_use]
    pub fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }

    /// The smallest span covering both.
    #[must_use]
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }

    /// Length in bytes.
    #[must_use]
    pub fn len(self) -> usize {
        self.end - self.start
    }

    /// Whether the span covers no bytes.
    #[must_use]
    pub fn is_empty(self) -> bool {
        self.end == self.start
    }
}

impl From<Span> for SourceSpan {
    fn from(span: Span) -> Self {
        SourceSpan::new(span.start.into(), span.len())
    }
}

impl From<pest::Span<'_>> for Span {
    fn from(span: pest::Span<'_>) -> Self {
        Span::new(span.start(), span.end())
    }
}

/// A named piece of `.rlp` source: a user file or the built-in prelude.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The name shown in diagnostics (a path, or `<prelude>`).
    pub name: String,
    /// The text.
    pub text: Arc<str>,
    /// Byte offset of every line's start, for line and column lookups in O(log n).
    line_starts: Arc<[usize]>,
}

impl SourceFile {
    /// A source file with the given name and text. A carriage return not followed by a line
    /// feed (old Mac line endings) ends a line like one: it becomes a line feed, byte for byte,
    /// so spans are unchanged.
    pub fn new(name: impl Into<String>, text: impl Into<Arc<str>>) -> Self {
        let mut text: Arc<str> = text.into();
        if text
            .bytes()
            .enumerate()
            .any(|(i, b)| b == b'\r' && text.as_bytes().get(i + 1) != Some(&b'\n'))
        {
            let bytes = text.as_bytes();
            let fixed: String = text
                .char_indices()
                .map(|(i, c)| {
                    if c == '\r' && bytes.get(i + 1) != Some(&b'\n') {
                        '\n'
                    } else {
                        c
                    }
                })
                .collect();
            text = fixed.into();
        }
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            name: name.into(),
            text,
            line_starts,
        }
    }

    /// The miette view of this file, for diagnostics.
    #[must_use]
    pub fn named_source(&self) -> NamedSource<Arc<str>> {
        NamedSource::new(self.name.clone(), Arc::clone(&self.text))
    }

    /// 0-based index of the line holding byte `offset`.
    #[must_use]
    pub fn line_index(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&start| start <= offset) - 1
    }

    /// The byte range of line `line` (0-based), without its line break.
    #[must_use]
    pub fn line_range(&self, line: usize) -> std::ops::Range<usize> {
        let start = self
            .line_starts
            .get(line)
            .copied()
            .unwrap_or(self.text.len());
        let end = self
            .line_starts
            .get(line + 1)
            .map_or(self.text.len(), |&next| next - 1);
        let end = if self.text.as_bytes()[start..end].ends_with(b"\r") {
            end - 1
        } else {
            end
        };
        start..end.max(start)
    }

    /// Number of lines (a final line without a line break counts).
    #[must_use]
    pub fn line_count(&self) -> usize {
        self.line_starts.len()
    }

    /// 1-based line and column (in characters) of a byte offset.
    #[must_use]
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let offset = floor_char_boundary(&self.text, offset.min(self.text.len()));
        let line = self.line_index(offset);
        let column = self.text[self.line_starts[line]..offset].chars().count() + 1;
        (line + 1, column)
    }
}

/// The largest char boundary at or before `offset`.
pub(crate) fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}
