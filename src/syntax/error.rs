//! Errors of the parsing phase.

use miette::Diagnostic;
use thiserror::Error;

use super::Span;

/// A problem found while parsing. pest stops at the first one, so a file has at most one.
#[derive(Debug, Clone, Error, Diagnostic)]
pub enum SyntaxError {
    /// The text does not follow the grammar at this point.
    #[error("expected {expected}, found {found}")]
    #[diagnostic(code(rlp::E0101))]
    Unexpected {
        /// What the grammar allows here.
        expected: String,
        /// What is there instead.
        found: String,
        /// Where.
        #[label("expected {expected}")]
        span: Span,
        /// A hint for common mistakes.
        #[help]
        help: Option<String>,
    },

    /// Brackets (or `else if` links) are nested deeper than the parser allows.
    #[error("nesting is more than {limit} levels deep (brackets and `else if` links each count)")]
    #[diagnostic(
        code(rlp::E0102),
        help(
            "split the expression into simpler parts, e.g. `min`/`max` instead of long `else if` chains"
        )
    )]
    TooDeep {
        /// The limit.
        limit: usize,
        /// The bracket or `if` that went over it.
        #[label("too deep here")]
        span: Span,
    },

    /// A reward expression with so many operations that checking it could exhaust the stack.
    #[error("the expression of `{name}` has {nodes} parts, more than the limit of {limit}")]
    #[diagnostic(
        code(rlp::E0105),
        help(
            "rewards are short formulas over `answer`, `process`, `format` and `length`; simplify this one"
        )
    )]
    ExpressionTooLarge {
        /// The reward.
        name: String,
        /// Its size in parse nodes.
        nodes: usize,
        /// The limit.
        limit: usize,
        /// The reward's name.
        #[label("this reward's expression is too large")]
        span: Span,
    },

    /// The file ends while a bracket is still open.
    #[error("`{open}` is never closed")]
    #[diagnostic(code(rlp::E0106), help("add the matching `{close}`"))]
    Unclosed {
        /// The opening bracket.
        open: char,
        /// The closing bracket it needs.
        close: char,
        /// The opening bracket.
        #[label("opened here")]
        span: Span,
        /// The end of the file.
        #[label("the file ends here")]
        end: Span,
    },

    /// The file is not UTF-8 text.
    #[error("the file is not valid UTF-8")]
    #[diagnostic(code(rlp::E0103), help("save the file as UTF-8 text"))]
    InvalidUtf8 {
        /// The first bad byte.
        #[label("invalid byte here")]
        span: Span,
    },

    /// A control character (other than tab and line breaks) in the text.
    #[error("the file contains the control character {shown}")]
    #[diagnostic(
        code(rlp::E0107),
        help(
            "remove it: .rlp files are text, and names and strings cannot hold control characters"
        )
    )]
    ControlCharacter {
        /// The character as `U+0000`.
        shown: String,
        /// Where.
        #[label("here")]
        span: Span,
    },

    /// A number literal is too large to represent, or so small that it would be read as 0.
    #[error("the number `{text}` is too {size}")]
    #[diagnostic(
        code(rlp::E0104),
        help(
            "write the number you mean: floats reach about 1.8e308, and the smallest above 0 is about 5e-324"
        )
    )]
    InvalidNumber {
        /// The literal as written.
        text: String,
        /// `large` or `small`.
        size: &'static str,
        /// Where.
        #[label("{}", if *size == "large" { "not a finite number" } else { "would be read as 0" })]
        span: Span,
    },
}
