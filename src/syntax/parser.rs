//! Parsing: source text → [`Ast`]. pest recognises the grammar in `grammar/rlp.pest`; this
//! module lowers its pairs into the AST and turns pest's errors into coded diagnostics.
//! The lowering trusts the grammar for the shape of the tree (`presume`), so every user-facing
//! error comes either from pest or from [`crate::analysis`].

use pest::Parser as _;
use pest::iterators::Pair;

use super::SyntaxError;
use super::ast::{Ast, Atom, Number};
pub(crate) use super::lower::is_noise;
use super::lower::{Lower, significant};
use super::span::Span;

/// The pest parser generated from `grammar/rlp.pest`.
#[derive(pest_derive::Parser)]
#[grammar = "grammar/rlp.pest"]
pub(crate) struct RlpParser;

/// Deeper nesting than this is rejected before pest sees it, so that no input can exhaust
/// the stack of the recursive-descent parser.
const MAX_NESTING: usize = 64;

/// Reward expressions larger than this (in parse nodes) are rejected: the checks walk them
/// recursively, and a left-leaning chain of operators is as deep as it is long.
const MAX_EXPRESSION_NODES: usize = 2000;

/// Parses a whole file into its syntax tree, one item per pest parse: a parse's token queue
/// grows with its input, and one queue for a 5 MB file costs more in copies and page faults
/// than the parsing itself.
pub fn parse(text: &str) -> Result<Ast, SyntaxError> {
    check_control_characters(text)?;
    check_nesting(text)?;
    let mut items = Vec::new();
    let mut base = if text.starts_with('\u{FEFF}') { 3 } else { 0 };
    let mut previous = None;
    loop {
        let rest = &text[base..];
        let mut pairs =
            RlpParser::parse(Rule::step, rest).map_err(|e| step_error(text, base, previous, &e))?;
        let step = presume(pairs.next(), "step");
        let lower = Lower { base };
        check_expression_sizes(&step, &lower)?;
        let mut at_end = false;
        for pair in step.clone().into_inner() {
            at_end |= pair.as_rule() == Rule::EOI;
            items.extend(lower.item(pair));
        }
        if at_end {
            break;
        }
        previous = Some(base);
        base += step.as_span().end();
    }
    let ast = Ast { items };
    check_numbers(&ast)?;
    Ok(ast)
}

/// Parses a source on its own (`arith[op 5, context zoo]`), as given on the command line;
/// spans are offsets into `text`.
pub(crate) fn parse_source(text: &str) -> Result<Atom, SyntaxError> {
    check_nesting(text)?;
    let unexpected = |offset: usize| {
        let (found, span) = found_at(text, offset);
        SyntaxError::Unexpected {
            expected: "a source such as `arith[op 2..=5, context zoo]`".to_owned(),
            found,
            span,
            help: None,
        }
    };
    let mut pairs = RlpParser::parse(Rule::source, text).map_err(|e| {
        unexpected(match e.location {
            pest::error::InputLocation::Pos(p) | pest::error::InputLocation::Span((p, _)) => p,
        })
    })?;
    let pair = presume(pairs.next(), "source");
    let end = pair.as_span().end();
    if end != text.len() {
        let rest = &text[end..];
        return Err(unexpected(end + rest.len() - rest.trim_start().len()));
    }
    Ok(Lower { base: 0 }.atom(pair))
}

/// The parse tree with comments, for the formatter.
pub(crate) fn parse_tree(text: &str) -> Result<Pair<'_, Rule>, SyntaxError> {
    check_control_characters(text)?;
    check_nesting(text)?;
    let mut pairs = RlpParser::parse(Rule::file, text).map_err(|e| syntax_error(text, 0, &e))?;
    Ok(presume(pairs.next(), "file"))
}

/// Unwraps a node the grammar guarantees; a `None` here is a bug in rlp, not in the input.
pub(super) fn presume<T>(value: Option<T>, what: &str) -> T {
    value.unwrap_or_else(|| panic!("grammar guarantees {what}"))
}

/// Rejects control characters other than tab and line breaks (a NUL inside a string, say).
fn check_control_characters(text: &str) -> Result<(), SyntaxError> {
    match text
        .char_indices()
        .find(|&(_, c)| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        Some((offset, c)) => Err(SyntaxError::ControlCharacter {
            shown: format!("U+{:04X}", u32::from(c)),
            span: Span::new(offset, offset + c.len_utf8()),
        }),
        None => Ok(()),
    }
}

/// Rejects nesting deeper than [`MAX_NESTING`]. Brackets nest, and so does an `else if` chain:
/// the parser recurses once per link, although the chain's braces close as it goes. Each `if`
/// counts one level until the line (at bracket depth 0) or its enclosing bracket ends.
fn check_nesting(text: &str) -> Result<(), SyntaxError> {
    let bytes = text.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    // `ifs[d]`: the `if`s met at bracket depth `d` since that depth was entered.
    let mut ifs: Vec<usize> = vec![0];
    for (offset, &byte) in bytes.iter().enumerate() {
        let deeper = match byte {
            b'(' | b'[' | b'{' => {
                ifs.push(0);
                true
            }
            b')' | b']' | b'}' => {
                if ifs.len() > 1 {
                    ifs.pop();
                }
                false
            }
            b'\n' if ifs.len() == 1 => {
                ifs[0] = 0;
                false
            }
            b'i' if bytes.get(offset + 1) == Some(&b'f')
                && (offset == 0 || !word(bytes[offset - 1]))
                && bytes.get(offset + 2).is_none_or(|&b| !word(b)) =>
            {
                if let Some(count) = ifs.last_mut() {
                    *count += 1;
                }
                true
            }
            // Brackets and `if`s in strings and comments count too: harmless, and simpler.
            _ => false,
        };
        if deeper && ifs.len() - 1 + ifs.iter().sum::<usize>() > MAX_NESTING {
            let end = if byte == b'i' { offset + 2 } else { offset + 1 };
            return Err(SyntaxError::TooDeep {
                limit: MAX_NESTING,
                span: Span::new(offset, end),
            });
        }
    }
    Ok(())
}

fn check_expression_sizes(step: &Pair<'_, Rule>, lower: &Lower) -> Result<(), SyntaxError> {
    for item in step
        .clone()
        .into_inner()
        .filter(|p| p.as_rule() == Rule::reward_item)
    {
        // `flatten` walks pest's token queue iteratively, so counting cannot overflow.
        let nodes = item.clone().into_inner().flatten().count();
        if nodes > MAX_EXPRESSION_NODES {
            let name = presume(significant(item.into_inner()).next(), "reward name");
            return Err(SyntaxError::ExpressionTooLarge {
                name: name.as_str().to_owned(),
                nodes,
                limit: MAX_EXPRESSION_NODES,
                span: lower.span(&name),
            });
        }
    }
    Ok(())
}

fn check_numbers(ast: &Ast) -> Result<(), SyntaxError> {
    let mut bad = None;
    crate::syntax::visit_numbers(ast, &mut |n: &Number| {
        let value = n.value();
        // Digits before any exponent that are not all 0 must not read as 0 (`1e-400`).
        let mantissa = n.text.split(['e', 'E']).next().unwrap_or("");
        let underflow = value == 0.0 && mantissa.bytes().any(|b| b.is_ascii_digit() && b != b'0');
        if bad.is_none() && (!value.is_finite() || underflow) {
            bad = Some((n.clone(), if underflow { "small" } else { "large" }));
        }
    });
    match bad {
        Some((n, size)) => Err(SyntaxError::InvalidNumber {
            text: n.text,
            size,
            span: n.span,
        }),
        None => Ok(()),
    }
}

/// The error of the step at `base`, read again from the step before it (`previous`) when
/// there is one, so that what that item's expression could still have taken is expected too.
fn step_error(
    text: &str,
    base: usize,
    previous: Option<usize>,
    error: &pest::error::Error<Rule>,
) -> SyntaxError {
    if let Some(previous) = previous {
        if let Err(e) = RlpParser::parse(Rule::step_after_item, &text[previous..]) {
            return syntax_error(text, previous, &e);
        }
    }
    syntax_error(text, base, error)
}

/// Converts a pest error, in a parse that started `base` bytes into `text`, into "expected
/// `{`, found `x`".
fn syntax_error(text: &str, base: usize, error: &pest::error::Error<Rule>) -> SyntaxError {
    use pest::error::{ErrorVariant, InputLocation};
    let offset = base
        + match error.location {
            InputLocation::Pos(p) | InputLocation::Span((p, _)) => p,
        };
    let expected = match &error.variant {
        ErrorVariant::ParsingError { positives, .. } => describe_expected(positives),
        ErrorVariant::CustomError { message } => message.clone(),
    };
    let (found, span) = found_at(text, offset);
    if found == "end of file"
        && let Some((open, at)) = innermost_unclosed(text)
    {
        let close = match open {
            '{' => '}',
            '[' => ']',
            _ => ')',
        };
        return SyntaxError::Unclosed {
            open,
            close,
            span: Span::new(at, at + 1),
            end: span,
        };
    }
    // `reward r if ...`: the grammar tries a block (`kind name {`) before giving up, so pest
    // expects `{`; the item's keyword says `=` was meant.
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let before: Vec<&str> = text[line_start..offset].split_whitespace().collect();
    if let [keyword @ ("reward" | "sweep" | "budget"), _name] = before.as_slice() {
        return SyntaxError::Unexpected {
            expected: "`=`".to_owned(),
            found,
            span,
            help: Some(format!(
                "write `{keyword} NAME = {}`",
                match *keyword {
                    "reward" => "EXPRESSION",
                    "sweep" => "[VALUE, ...]",
                    _ => "AMOUNT UNIT",
                }
            )),
        };
    }
    if found == "`\"`" {
        let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
        if !text[offset + 1..line_end].contains('"') {
            return SyntaxError::Unexpected {
                expected: "a string closed on its line".to_owned(),
                found: "a `\"` that opens a string never closed".to_owned(),
                span,
                help: Some("add the closing `\"`: a string ends on the line it starts".to_owned()),
            };
        }
    }
    let help = hint_for(&expected, &found).or_else(|| name_hint(text, offset, &expected, &found));
    SyntaxError::Unexpected {
        expected,
        found,
        span,
        help,
    }
}

/// The innermost bracket still open at the end of the text (outside strings and comments).
fn innermost_unclosed(text: &str) -> Option<(char, usize)> {
    let mut stack = Vec::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '#' => {
                for (_, c) in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '"' => {
                let mut escaped = false;
                for (_, c) in chars.by_ref() {
                    if c == '"' && !escaped || c == '\n' {
                        break;
                    }
                    escaped = c == '\\' && !escaped;
                }
            }
            '{' | '[' | '(' => stack.push((c, i)),
            '}' | ']' | ')' => {
                stack.pop();
            }
            _ => {}
        }
    }
    stack.pop()
}

fn describe_expected(rules: &[Rule]) -> String {
    let mut names: Vec<&str> = rules.iter().filter_map(|r| rule_name(*r)).collect();
    names.sort_unstable();
    names.dedup();
    match names.as_slice() {
        [] => "a different token".to_owned(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// How a grammar rule is named to users (`pest_meta`'s `rename_meta_rule` idea).
fn rule_name(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::EOI => "end of file",
        // A file or step that fails where it starts is reported as itself (pest names the
        // outermost rule that failed at the error's position).
        Rule::file | Rule::step | Rule::step_after_item => {
            "an item (such as `pretrain`, `task` or `seed`) or end of file"
        }
        Rule::item | Rule::use_item | Rule::seed_item | Rule::block_item | Rule::block_kind => {
            "an item (such as `pretrain`, `task` or `seed`)"
        }
        Rule::reward_item => "`reward`",
        Rule::sweep_item => "`sweep`",
        Rule::budget_item => "`budget`",
        Rule::block => "`{`",
        Rule::line | Rule::atom => "a value",
        Rule::comma => "`,`",
        Rule::source | Rule::source_arg => "a source argument such as `op 2..=5`",
        Rule::range | Rule::range_op => "a range such as `2..=5`",
        Rule::quantity | Rule::number | Rule::expr_number => "a number",
        Rule::suffix => "a suffix",
        Rule::string | Rule::string_inner => "a string",
        Rule::var => "a sweep variable such as `$range`",
        Rule::arrow => "`->`",
        Rule::name | Rule::word | Rule::ident | Rule::expr_name => "a name",
        Rule::from_clause => "`from`",
        Rule::budget_rate => "`where`",
        Rule::sweep_zip => "`zip`",
        Rule::expr | Rule::if_expr | Rule::compare | Rule::sum | Rule::product | Rule::unary => {
            "an expression"
        }
        Rule::cmp_op => "a comparison",
        Rule::add_op | Rule::mul_op => "an operator",
        Rule::call => "a call",
        Rule::neg => "`-`",
        // Silent helper rules never reach users.
        _ => return None,
    })
}

/// The token at `offset`, for "found ..." and the label's extent.
fn found_at(text: &str, offset: usize) -> (String, Span) {
    let offset = crate::syntax::span::floor_char_boundary(text, offset);
    let rest = &text[offset..];
    if rest.trim().is_empty() {
        // Point just after the last text, not at trailing blank lines.
        let end = text.trim_end().len();
        return ("end of file".to_owned(), Span::new(end, end));
    }
    let Some(first) = rest.chars().next() else {
        return ("end of file".to_owned(), Span::new(offset, offset));
    };
    if first == '\n' || first == '\r' {
        return (
            "end of line".to_owned(),
            Span::new(offset, offset + first.len_utf8()),
        );
    }
    let word_len: usize = rest
        .char_indices()
        .take_while(|(_, c)| c.is_alphanumeric() || *c == '_')
        .map(|(_, c)| c.len_utf8())
        .sum();
    let len = if word_len > 0 {
        word_len
    } else {
        first.len_utf8()
    };
    (
        format!("`{}`", &rest[..len]),
        Span::new(offset, offset + len),
    )
}

/// Why a word where a name was expected is not one: a reserved word, or a letter outside
/// ASCII in it.
fn name_hint(text: &str, offset: usize, expected: &str, found: &str) -> Option<String> {
    if !expected.contains("a name") && !expected.contains("`{`") {
        return None;
    }
    let word = found.trim_matches('`');
    if RESERVED.contains(&word) {
        return Some(format!(
            "`{word}` is a reserved word and cannot be a name; choose another"
        ));
    }
    // The whole word around the offset, letters of any script included.
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    let start = text[..offset]
        .char_indices()
        .rev()
        .take_while(|(_, c)| is_word(*c))
        .last()
        .map_or(offset, |(i, _)| i);
    let end = text[offset..]
        .char_indices()
        .find(|(_, c)| !is_word(*c))
        .map_or(text.len(), |(i, _)| offset + i);
    let whole = &text[start..end];
    let odd = whole.chars().find(|c| !c.is_ascii())?;
    // Diagnostics cut a long quoted name when they are shown.
    Some(format!(
        "names use ASCII letters, digits, `_` and `-`; `{whole}` has `{odd}`"
    ))
}

/// Words of the grammar that cannot be names.
const RESERVED: &[&str] = &[
    "use", "seed", "reward", "sweep", "budget", "from", "where", "if", "else", "zip",
];

fn hint_for(expected: &str, found: &str) -> Option<String> {
    if expected.contains("`{`") && found == "end of line" {
        return Some("the `{` that opens a block goes on the same line as its name".to_owned());
    }
    if found == "end of file" {
        return Some("the file ends in the middle of an item".to_owned());
    }
    if expected == "end of file" || expected.contains("an item") {
        return Some(
            "each item starts on its own line: a block (`kind name { ... }`), `seed`, `use`, \
             `reward`, `sweep` or `budget`"
                .to_owned(),
        );
    }
    None
}
