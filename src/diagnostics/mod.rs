//! Diagnostics: the coded problems the front end reports, and their renderings.
//!
//! Each phase has its own error type ([`SyntaxError`], [`AnalysisError`], [`AnalysisWarning`]);
//! [`Diagnostics`] gathers them for one file, sorted by position, and renders them as miette
//! code frames (with or without colour) or as JSON for tools.

mod analysis_error;
mod analysis_warning;
pub mod explain;
mod source;

use std::fmt::Write as _;

pub use crate::syntax::SyntaxError;
pub use analysis_error::AnalysisError;
pub use analysis_warning::AnalysisWarning;
use miette::{Diagnostic as _, GraphicalReportHandler, GraphicalTheme, LabeledSpan, SourceCode};
use serde::Serialize;

use self::source::{Indexed, LONG_LINE_LABEL};
use crate::syntax::SourceFile;

/// The human output draws at most this many problems of one code; the rest are counted in one
/// line (`--format json` keeps them all).
pub const SHOWN_PER_CODE: usize = 10;

/// The version of the JSON that `rlp check --format json` prints.
pub const JSON_SCHEMA: u32 = 1;

/// One problem from any phase.
#[derive(Debug, Clone, thiserror::Error, miette::Diagnostic)]
pub enum Diagnostic {
    /// From parsing.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Syntax(#[from] SyntaxError),
    /// From analysis.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Analysis(#[from] AnalysisError),
    /// A warning from analysis.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Warning(#[from] AnalysisWarning),
}

impl Diagnostic {
    /// Whether this problem stops the file from being used.
    #[must_use]
    pub fn is_error(&self) -> bool {
        !matches!(self, Diagnostic::Warning(_))
    }

    /// The stable code, e.g. `rlp::E0201`.
    #[must_use]
    pub fn code(&self) -> String {
        miette::Diagnostic::code(self)
            .map(|c| c.to_string())
            .unwrap_or_default()
    }

    /// The primary (first) labelled span: what the problem is sorted and located by.
    #[must_use]
    pub fn primary(&self) -> (usize, usize) {
        self.labels()
            .and_then(|mut labels| labels.next())
            .map_or((0, 0), |l: LabeledSpan| (l.offset(), l.len()))
    }
}

/// All problems found in one file.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    /// The file they are about.
    pub source: SourceFile,
    /// The problems, sorted by position.
    pub problems: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Gathers problems, sorting them by position and dropping exact repeats (sweep cells
    /// can find the same problem once per cell).
    #[must_use]
    pub fn new(source: SourceFile, mut problems: Vec<Diagnostic>) -> Self {
        problems.sort_by_key(|p| (p.primary(), p.code()));
        let mut seen = std::collections::BTreeSet::new();
        problems.retain(|p| seen.insert((p.primary(), p.code(), p.to_string())));
        Self { source, problems }
    }

    /// Whether any problem is an error (not just a warning).
    #[must_use]
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(Diagnostic::is_error)
    }

    /// Number of errors.
    #[must_use]
    pub fn error_count(&self) -> usize {
        self.problems.iter().filter(|p| p.is_error()).count()
    }

    /// Renders every problem as a code frame, without colour, at the given width: the form
    /// snapshot tests compare.
    #[must_use]
    pub fn render_plain(&self, width: usize) -> String {
        let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
            .with_width(width)
            .with_links(false);
        self.render_with(&handler)
    }

    /// Renders every problem for a terminal, with colour if `color` is set.
    #[must_use]
    pub fn render_human(&self, color: bool) -> String {
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_width(100)
            .with_links(false);
        self.render_with(&handler)
    }

    fn render_with(&self, handler: &GraphicalReportHandler) -> String {
        let source = Indexed(&self.source);
        let mut out = String::new();
        let mut shown: std::collections::BTreeMap<String, usize> =
            std::collections::BTreeMap::new();
        for problem in &self.problems {
            let count = shown.entry(problem.code()).or_default();
            *count += 1;
            if *count > SHOWN_PER_CODE {
                continue;
            }
            let located = Located {
                problem,
                source: &source,
            };
            if handler.render_report(&mut out, &located).is_err() {
                let _ = writeln!(out, "{problem}");
            }
        }
        for (code, count) in shown {
            if count > SHOWN_PER_CODE {
                let _ = writeln!(
                    out,
                    "... and {} more {code} (`--format json` lists every one)\n",
                    count - SHOWN_PER_CODE
                );
            }
        }
        out
    }

    /// The problems as JSON records (see [`JsonDiagnostic`]).
    #[must_use]
    pub fn to_json(&self) -> Vec<JsonDiagnostic> {
        self.problems
            .iter()
            .map(|p| {
                let (offset, len) = p.primary();
                let (line, column) = self.source.line_column(offset);
                let (end_line, end_column) = self.source.line_column(offset + len);
                JsonDiagnostic {
                    code: p.code(),
                    severity: if p.is_error() { "error" } else { "warning" },
                    message: shorten_quoted(&p.to_string()),
                    file: self.source.name.clone(),
                    line,
                    column,
                    end_line,
                    end_column,
                    span: JsonSpan {
                        start: offset,
                        end: offset + len,
                    },
                    labels: p
                        .labels()
                        .into_iter()
                        .flatten()
                        .map(|l| JsonLabel {
                            message: l.label().map(str::to_owned),
                            span: JsonSpan {
                                start: l.offset(),
                                end: l.offset() + l.len(),
                            },
                        })
                        .collect(),
                    help: p.help().map(|h| shorten_quoted(&h.to_string())),
                }
            })
            .collect()
    }
}

/// One diagnostic in `rlp check --format json`.
#[derive(Debug, Clone, Serialize)]
pub struct JsonDiagnostic {
    /// Stable code, e.g. `rlp::E0201`.
    pub code: String,
    /// `error` or `warning`.
    pub severity: &'static str,
    /// One-line message.
    pub message: String,
    /// File name as given.
    pub file: String,
    /// 1-based line of the primary span's start.
    pub line: usize,
    /// 1-based column (in characters) of the primary span's start.
    pub column: usize,
    /// 1-based line of the primary span's end.
    pub end_line: usize,
    /// 1-based column of the primary span's end.
    pub end_column: usize,
    /// Byte span of the primary label.
    pub span: JsonSpan,
    /// Every label.
    pub labels: Vec<JsonLabel>,
    /// Help text, if any.
    pub help: Option<String>,
}

/// A byte range in JSON output.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct JsonSpan {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

/// A label in JSON output.
#[derive(Debug, Clone, Serialize)]
pub struct JsonLabel {
    /// The label's text.
    pub message: Option<String>,
    /// Where.
    pub span: JsonSpan,
}

/// A problem paired with the source it points into, so miette can draw the frame.
struct Located<'a> {
    problem: &'a Diagnostic,
    source: &'a Indexed<'a>,
}

impl std::fmt::Debug for Located<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.problem.fmt(f)
    }
}

impl std::fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&shorten_quoted(&self.problem.to_string()))
    }
}

/// The longest quoted piece of source a message repeats whole, in characters.
const QUOTE_MAX: usize = 60;

/// `text` with every backtick-quoted piece longer than [`QUOTE_MAX`] characters cut short
/// (a 1 MB name is not echoed whole, in any message).
fn shorten_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(4096));
    for (i, piece) in text.split('`').enumerate() {
        if i > 0 {
            out.push('`');
        }
        // Odd pieces are inside backticks.
        if i % 2 == 1 && piece.chars().count() > QUOTE_MAX {
            let kept: String = piece.chars().take(QUOTE_MAX).collect();
            let _ = write!(out, "{kept}… ({} characters)", piece.chars().count());
        } else {
            out.push_str(piece);
        }
    }
    out
}

impl std::error::Error for Located<'_> {}

impl miette::Diagnostic for Located<'_> {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.problem.code_ref()
    }
    fn severity(&self) -> Option<miette::Severity> {
        miette::Diagnostic::severity(self.problem)
    }
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.problem
            .help()
            .map(|h| Box::new(shorten_quoted(&h.to_string())) as Box<dyn std::fmt::Display>)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        // On a long line only a window is drawn: labels are cut to fit in it, and a label far
        // from the first one on the same long line is left out (JSON keeps every label whole).
        let labels: Vec<LabeledSpan> = self.problem.labels()?.collect();
        let mut first_on_long_line: Option<usize> = None;
        let kept = labels.into_iter().filter_map(move |label| {
            if !self.source.on_long_line(label.offset()) {
                return Some(label);
            }
            let anchor = *first_on_long_line.get_or_insert(label.offset());
            (label.offset().abs_diff(anchor) <= LONG_LINE_LABEL).then(|| {
                let line = self
                    .source
                    .0
                    .line_range(self.source.0.line_index(label.offset()));
                let len = label
                    .len()
                    .min(LONG_LINE_LABEL)
                    .min(line.end.saturating_sub(label.offset()));
                let text = label.label().map(str::to_owned);
                let span = miette::SourceSpan::new(label.offset().into(), len);
                if label.primary() {
                    LabeledSpan::new_primary_with_span(text, span)
                } else {
                    LabeledSpan::new_with_span(text, span)
                }
            })
        });
        Some(Box::new(kept))
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(self.source)
    }
}

impl Diagnostic {
    fn code_ref(&self) -> Option<Box<dyn std::fmt::Display + '_>> {
        miette::Diagnostic::code(self)
    }
}
