//! Parsing: source text → [`Ast`]. pest recognises the grammar in `grammar/rlp.pest`; this
//! module lowers its pairs into the AST and turns pest's errors into coded diagnostics.
//! The lowering trusts the grammar for the shape of the tree (`presume`), so every user-facing
//! error comes either from pest or from [`crate::analysis`].

use pest::Parser as _;
use pest::iterators::{Pair, Pairs};

use super::ast::{
    Ast, Atom, BinaryOp, Block, BudgetItem, BudgetRate, Expr, Item, Line, Name, Number, Range,
    RewardItem, SeedItem, Source, SourceArg, Str, Suffix, SweepItem,
};
use super::span::Span;
use crate::diagnostics::SyntaxError;

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

/// Parses a whole file into its syntax tree.
pub fn parse(text: &str) -> Result<Ast, SyntaxError> {
    check_control_characters(text)?;
    check_nesting(text)?;
    let mut pairs = RlpParser::parse(Rule::file, text).map_err(|e| syntax_error(text, &e))?;
    let file = presume(pairs.next(), "file");
    check_expression_sizes(&file)?;
    let ast = Ast {
        items: file.into_inner().filter_map(lower_item).collect(),
    };
    check_numbers(&ast)?;
    Ok(ast)
}

/// Parses a source on its own (`arith[op 5, context zoo]`), as given on the command line.
pub(crate) fn parse_source(text: &str) -> Result<Atom, String> {
    check_nesting(text).map_err(|e| e.to_string())?;
    let mut pairs = RlpParser::parse(Rule::source, text.trim()).map_err(|e| {
        let (found, _) = found_at(
            text,
            match e.location {
                pest::error::InputLocation::Pos(p) | pest::error::InputLocation::Span((p, _)) => p,
            },
        );
        format!("unexpected {found}")
    })?;
    let pair = presume(pairs.next(), "source");
    if pair.as_span().end() != text.trim().len() {
        return Err("unexpected text after the source".to_owned());
    }
    Ok(lower_atom(pair))
}

/// The parse tree with comments, for the formatter.
pub(crate) fn parse_tree(text: &str) -> Result<Pair<'_, Rule>, SyntaxError> {
    check_control_characters(text)?;
    check_nesting(text)?;
    let mut pairs = RlpParser::parse(Rule::file, text).map_err(|e| syntax_error(text, &e))?;
    Ok(presume(pairs.next(), "file"))
}

/// Unwraps a node the grammar guarantees; a `None` here is a bug in rlp, not in the input.
fn presume<T>(value: Option<T>, what: &str) -> T {
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

fn check_expression_sizes(file: &Pair<'_, Rule>) -> Result<(), SyntaxError> {
    for item in file
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
                span: name.as_span().into(),
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

/// Converts a pest error into "expected `{`, found `x`".
fn syntax_error(text: &str, error: &pest::error::Error<Rule>) -> SyntaxError {
    use pest::error::{ErrorVariant, InputLocation};
    let offset = match error.location {
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
    if expected == "end of file" || expected.starts_with("an item") {
        return Some(
            "each item starts on its own line: a block (`kind name { ... }`), `seed`, `use`, \
             `reward`, `sweep` or `budget`"
                .to_owned(),
        );
    }
    None
}

fn name(pair: &Pair<'_, Rule>) -> Name {
    Name {
        text: pair.as_str().to_owned(),
        span: pair.as_span().into(),
    }
}

fn significant(pairs: Pairs<'_, Rule>) -> impl Iterator<Item = Pair<'_, Rule>> {
    pairs.filter(|p| !is_noise(p.as_rule()))
}

/// Comments and keywords: tokens that carry no content of their own.
pub(crate) fn is_noise(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::COMMENT
            | Rule::kw_use
            | Rule::kw_seed
            | Rule::kw_reward
            | Rule::kw_sweep
            | Rule::kw_budget
            | Rule::kw_from
            | Rule::kw_where
            | Rule::kw_if
            | Rule::kw_else
            | Rule::kw_zip
    )
}

fn lower_item(pair: Pair<'_, Rule>) -> Option<Item> {
    let span: Span = pair.as_span().into();
    let rule = pair.as_rule();
    let mut inner = significant(pair.into_inner());
    let item = match rule {
        Rule::use_item => Item::Use(name(&presume(inner.next(), "use name"))),
        Rule::seed_item => Item::Seed(SeedItem {
            value: lower_atom(presume(inner.next(), "seed value")),
            span,
        }),
        Rule::reward_item => {
            let reward_name = name(&presume(inner.next(), "reward name"));
            let expr = lower_expr(presume(inner.next(), "reward expr"));
            Item::Reward(RewardItem {
                name: reward_name,
                expr,
                span,
            })
        }
        Rule::sweep_item => {
            let sweep_name = name(&presume(inner.next(), "sweep name"));
            let mut values = Vec::new();
            let mut zip = None;
            for part in inner {
                match part.as_rule() {
                    Rule::comma => {}
                    Rule::sweep_zip => {
                        zip = Some(name(&presume(
                            significant(part.into_inner()).next(),
                            "zip name",
                        )));
                    }
                    _ => values.push(lower_atom(part)),
                }
            }
            Item::Sweep(SweepItem {
                name: sweep_name,
                values,
                zip,
                span,
            })
        }
        Rule::budget_item => {
            let budget_name = name(&presume(inner.next(), "budget name"));
            let amount = lower_atom(presume(inner.next(), "budget amount"));
            let unit = name(&presume(inner.next(), "budget unit"));
            let rate = inner.next().map(|rate| {
                let mut parts = significant(rate.into_inner());
                BudgetRate {
                    unit: name(&presume(parts.next(), "rate unit")),
                    amount: lower_atom(presume(parts.next(), "rate amount")),
                    other: name(&presume(parts.next(), "rate other unit")),
                }
            });
            Item::Budget(BudgetItem {
                name: budget_name,
                amount,
                unit,
                rate,
                span,
            })
        }
        Rule::block_item => Item::Block(lower_block(inner, span)),
        _ => return None, // EOI
    };
    Some(item)
}

fn lower_block<'i>(inner: impl Iterator<Item = Pair<'i, Rule>>, span: Span) -> Block {
    let mut kind = None;
    let mut block_name = None;
    let mut parent = None;
    let mut lines = Vec::new();
    for part in inner {
        match part.as_rule() {
            Rule::block_kind => kind = Some(name(&part)),
            Rule::name => block_name = Some(name(&part)),
            Rule::from_clause => {
                parent = Some(name(&presume(
                    significant(part.into_inner()).next(),
                    "from name",
                )));
            }
            Rule::block => {
                lines = significant(part.into_inner()).map(lower_line).collect();
            }
            _ => {}
        }
    }
    Block {
        kind: presume(kind, "block kind"),
        name: block_name,
        parent,
        lines,
        span,
    }
}

fn lower_line(pair: Pair<'_, Rule>) -> Line {
    let span = pair.as_span().into();
    let mut groups = vec![Vec::new()];
    for part in significant(pair.into_inner()) {
        if part.as_rule() == Rule::comma {
            groups.push(Vec::new());
        } else if let Some(group) = groups.last_mut() {
            group.push(lower_atom(part));
        }
    }
    // A trailing comma leaves an empty last group: it carries no meaning.
    if groups.len() > 1 && groups.last().is_some_and(Vec::is_empty) {
        groups.pop();
    }
    Line { groups, span }
}

fn lower_number(pair: &Pair<'_, Rule>) -> Number {
    let span: Span = pair.as_span().into();
    let mut text = pair.as_str().to_owned();
    let mut suffix = None;
    if pair.as_rule() == Rule::quantity {
        let mut parts = pair.clone().into_inner();
        let digits = presume(parts.next(), "quantity digits");
        digits.as_str().clone_into(&mut text);
        suffix = parts.next().map(|s| match s.as_str() {
            "%" => Suffix::Percent,
            "k" | "K" => Suffix::Thousand,
            "M" => Suffix::Million,
            _ => Suffix::Billion,
        });
    }
    Number { text, suffix, span }
}

fn lower_atom(pair: Pair<'_, Rule>) -> Atom {
    let span: Span = pair.as_span().into();
    match pair.as_rule() {
        Rule::name | Rule::word => Atom::Name(name(&pair)),
        Rule::quantity | Rule::number => Atom::Number(lower_number(&pair)),
        Rule::range => {
            let mut parts = pair.into_inner();
            let lo = lower_number(&presume(parts.next(), "range lo"));
            let op = presume(parts.next(), "range op");
            let hi = lower_number(&presume(parts.next(), "range hi"));
            Atom::Range(Range {
                lo,
                hi,
                inclusive: op.as_str() == "..=",
                span,
            })
        }
        Rule::string => {
            let inner = presume(pair.into_inner().next(), "string inner").as_str();
            Atom::Str(Str {
                value: unescape(inner),
                span,
            })
        }
        Rule::var => {
            let ident = presume(pair.into_inner().next(), "var ident");
            Atom::Var(Name {
                text: ident.as_str().to_owned(),
                span,
            })
        }
        Rule::arrow => Atom::Arrow(span),
        Rule::source => {
            let mut parts = significant(pair.into_inner()).filter(|p| p.as_rule() != Rule::comma);
            let task = name(&presume(parts.next(), "source task"));
            let args = parts
                .map(|arg| {
                    let arg_span = arg.as_span().into();
                    let mut arg_parts = significant(arg.into_inner());
                    let key = name(&presume(arg_parts.next(), "source arg key"));
                    SourceArg {
                        key,
                        values: arg_parts.map(lower_atom).collect(),
                        span: arg_span,
                    }
                })
                .collect();
            Atom::Source(Source { task, args, span })
        }
        other => unreachable!("grammar: {other:?} is not an atom"),
    }
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn lower_expr(pair: Pair<'_, Rule>) -> Expr {
    let span: Span = pair.as_span().into();
    match pair.as_rule() {
        Rule::expr => lower_expr(presume(significant(pair.into_inner()).next(), "expr body")),
        Rule::if_expr => {
            let mut parts = significant(pair.into_inner());
            let condition = Box::new(lower_expr(presume(parts.next(), "if condition")));
            let then = Box::new(lower_expr(presume(parts.next(), "if then")));
            let otherwise = Box::new(lower_expr(presume(parts.next(), "if else")));
            Expr::If {
                condition,
                then,
                otherwise,
                span,
            }
        }
        Rule::compare | Rule::sum | Rule::product => {
            let mut parts = significant(pair.into_inner());
            let mut lhs = lower_expr(presume(parts.next(), "operand"));
            while let (Some(op), Some(rhs)) = (parts.next(), parts.next()) {
                let rhs = lower_expr(rhs);
                let span = lhs.span().to(rhs.span());
                let op = binary_op(op.as_str());
                lhs = Expr::Binary {
                    op,
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                    span,
                };
            }
            lhs
        }
        Rule::unary => {
            let parts: Vec<_> = significant(pair.into_inner()).collect();
            let (negs, operand) = parts.split_at(parts.len() - 1);
            let mut expr = lower_expr(operand[0].clone());
            for neg in negs.iter().rev() {
                let span = Span::from(neg.as_span()).to(expr.span());
                expr = Expr::Neg {
                    operand: Box::new(expr),
                    span,
                };
            }
            expr
        }
        Rule::call => {
            let mut parts = significant(pair.into_inner());
            let function = name(&presume(parts.next(), "call name"));
            Expr::Call {
                function,
                args: parts.map(lower_expr).collect(),
                span,
            }
        }
        Rule::expr_number => Expr::Number {
            value: pair.as_str().parse().unwrap_or(f64::NAN),
            span,
        },
        Rule::var => {
            let ident = presume(pair.into_inner().next(), "var ident");
            Expr::Var(Name {
                text: ident.as_str().to_owned(),
                span,
            })
        }
        Rule::expr_name => Expr::Name(name(&pair)),
        other => unreachable!("grammar: {other:?} is not an expression"),
    }
}

fn binary_op(text: &str) -> BinaryOp {
    BinaryOp::from_symbol(text).unwrap_or_else(|| unreachable!("grammar: `{text}` is an operator"))
}
