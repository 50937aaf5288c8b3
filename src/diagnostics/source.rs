//! The source view miette draws code frames from: line lookups through the file's line index
//! (a frame costs the lines it shows, not the file before it), and a window around the label
//! on a long line (miette's renderer cannot draw a label past column 65,535, and a frame that
//! reprints a 70 KB line helps nobody).

use miette::{MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};

use crate::syntax::SourceFile;
use crate::syntax::span::floor_char_boundary;

/// Lines longer than this many bytes are shown as a window around the label.
pub(super) const LONG_LINE: usize = 240;
/// Bytes of a long line shown before and after a label.
const WINDOW_MARGIN: usize = 60;
/// The most bytes of a label drawn on a long line.
pub(super) const LONG_LINE_LABEL: usize = 80;

/// A [`SourceFile`] as miette reads it.
pub(super) struct Indexed<'a>(pub(super) &'a SourceFile);

impl Indexed<'_> {
    /// Whether the line holding `offset` is too long for a whole-line frame.
    pub(super) fn on_long_line(&self, offset: usize) -> bool {
        let source = self.0;
        source.line_range(source.line_index(offset)).len() > LONG_LINE
    }
}

fn ceil_char_boundary(text: &str, mut offset: usize) -> usize {
    while offset < text.len() && !text.is_char_boundary(offset) {
        offset += 1;
    }
    offset.min(text.len())
}

impl SourceCode for Indexed<'_> {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let source = self.0;
        let text: &'a str = &source.text;
        if span.offset() > text.len() {
            return Err(MietteError::OutOfBounds);
        }
        let first = source.line_index(span.offset());
        let name = source.name.clone();
        if self.on_long_line(span.offset()) {
            // One line, cut to a window around the label.
            let line = source.line_range(first);
            let start = floor_char_boundary(
                text,
                span.offset().saturating_sub(WINDOW_MARGIN).max(line.start),
            );
            let end = ceil_char_boundary(
                text,
                (span.offset() + span.len().min(LONG_LINE_LABEL) + WINDOW_MARGIN).min(line.end),
            );
            let column = text[line.start..start].chars().count();
            return Ok(Box::new(MietteSpanContents::new_named(
                name,
                &text.as_bytes()[start..end],
                (start, end - start).into(),
                first,
                column,
                first + 1,
            )));
        }
        // The lines miette asks for, plus one either side so that its scan ends as it would
        // on the whole file; then its own reading on that slice, shifted back.
        let end = (span.offset() + span.len()).min(text.len());
        let last = source.line_index(end.saturating_sub(1).max(span.offset()));
        let from_line = first.saturating_sub(before + 1);
        let to_line = (last + after + 1).min(source.line_count() - 1);
        let slice_start = source.line_range(from_line).start;
        let slice_end = source
            .line_range(to_line + 1)
            .start
            .max(source.line_range(to_line).end)
            .min(text.len());
        let slice = &text.as_bytes()[slice_start..slice_end];
        let local = SourceSpan::new((span.offset() - slice_start).into(), span.len());
        let contents = slice.read_span(&local, before, after)?;
        let data: &'a [u8] = contents.data();
        let data_start = slice_start + contents.span().offset();
        Ok(Box::new(MietteSpanContents::new_named(
            name,
            data,
            (data_start, data.len()).into(),
            from_line + contents.line(),
            contents.column(),
            from_line + contents.line_count(),
        )))
    }
}
