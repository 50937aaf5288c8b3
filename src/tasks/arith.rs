//! Arithmetic in solution text: evaluating an expression over known variables, and checking
//! that every equation a step writes holds.

use std::collections::BTreeMap;

/// Absolute tolerance for values, answers and the two sides of an equation.
pub const TOLERANCE: f64 = 1e-6;

/// Substitutes variables and evaluates `+ - * / ( )` arithmetic; `None` if anything else is
/// left or the result is not finite.
pub(crate) fn evaluate(expr: &str, table: &BTreeMap<char, f64>) -> Option<f64> {
    let mut parser = Arith {
        text: expr.as_bytes(),
        pos: 0,
        depth: 0,
        table,
    };
    let value = parser.sum()?;
    parser.skip_space();
    (parser.pos == parser.text.len() && value.is_finite()).then_some(value)
}

/// Whether every equation in `text` holds: each `=` joins the arithmetic just before it to the
/// arithmetic just after it (so `A = e1 = e2 = v` checks `A = e1`, `e1 = e2` and `e2 = v`, and
/// `Simplifying the equation: 4*x = 12` checks `4*x = 12`). Clauses end at `.` (not a decimal
/// point), `;`, `,`, `:` and line breaks. A side that cannot be evaluated (an unknown letter,
/// no arithmetic at all) is not checked: a wrong reference is the dependency check's to charge.
pub(crate) fn equations_hold(text: &str, table: &BTreeMap<char, f64>) -> bool {
    clauses(text).all(|clause| {
        let segments: Vec<&str> = clause.split('=').collect();
        segments.windows(2).all(|pair| {
            let left = evaluate(trailing_run(pair[0]), table);
            let right = evaluate(leading_run(pair[1]), table);
            match (left, right) {
                (Some(l), Some(r)) => (l - r).abs() <= TOLERANCE,
                _ => true,
            }
        })
    })
}

/// The text split at clause ends; a `.` between two digits is a decimal point, not an end.
fn clauses(text: &str) -> impl Iterator<Item = &str> {
    let b = text.as_bytes();
    let mut start = 0;
    let mut cuts = Vec::new();
    for (i, &c) in b.iter().enumerate() {
        let end = match c {
            b';' | b',' | b':' | b'\n' => true,
            b'.' => {
                !(i > 0
                    && b[i - 1].is_ascii_digit()
                    && b.get(i + 1).is_some_and(u8::is_ascii_digit))
            }
            _ => false,
        };
        if end {
            cuts.push(&text[start..i]);
            start = i + 1;
        }
    }
    cuts.push(&text[start..]);
    cuts.into_iter().filter(|c| c.contains('='))
}

/// Whether byte `i` of `b` is a letter standing alone (not part of a word or a number).
fn lone_letter(b: &[u8], i: usize) -> bool {
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80;
    b[i].is_ascii_alphabetic()
        && (i == 0 || !word(b[i - 1]))
        && b.get(i + 1).is_none_or(|&c| !word(c))
}

/// Whether byte `i` can be part of an arithmetic expression.
fn arithmetic(b: &[u8], i: usize) -> bool {
    matches!(
        b[i],
        b'0'..=b'9' | b'.' | b'+' | b'-' | b'*' | b'/' | b'(' | b')'
    ) || b[i].is_ascii_whitespace()
        || lone_letter(b, i)
}

/// The longest arithmetic suffix of `text`, trimmed.
fn trailing_run(text: &str) -> &str {
    let b = text.as_bytes();
    let mut start = b.len();
    while start > 0 && arithmetic(b, start - 1) {
        start -= 1;
    }
    text[start..].trim()
}

/// The longest arithmetic prefix of `text`, trimmed.
fn leading_run(text: &str) -> &str {
    let b = text.as_bytes();
    let mut end = 0;
    while end < b.len() && arithmetic(b, end) {
        end += 1;
    }
    text[..end].trim()
}

/// A recursive-descent evaluator over the bytes of an expression.
struct Arith<'a> {
    text: &'a [u8],
    pos: usize,
    depth: usize,
    table: &'a BTreeMap<char, f64>,
}

impl Arith<'_> {
    fn skip_space(&mut self) {
        while self.pos < self.text.len() && self.text[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_space();
        self.text.get(self.pos).copied()
    }

    fn sum(&mut self) -> Option<f64> {
        let mut value = self.product()?;
        while let Some(op @ (b'+' | b'-')) = self.peek() {
            self.pos += 1;
            let rhs = self.product()?;
            value = if op == b'+' { value + rhs } else { value - rhs };
        }
        Some(value)
    }

    fn product(&mut self) -> Option<f64> {
        let mut value = self.unary()?;
        while let Some(op @ (b'*' | b'/')) = self.peek() {
            self.pos += 1;
            let rhs = self.unary()?;
            value = if op == b'*' { value * rhs } else { value / rhs };
        }
        Some(value)
    }

    fn unary(&mut self) -> Option<f64> {
        self.depth += 1;
        if self.depth > 64 {
            return None;
        }
        let result = match self.peek()? {
            b'-' => {
                self.pos += 1;
                self.unary().map(|v| -v)
            }
            b'+' => {
                self.pos += 1;
                self.unary()
            }
            b'(' => {
                self.pos += 1;
                let v = self.sum()?;
                if self.peek() != Some(b')') {
                    return None;
                }
                self.pos += 1;
                Some(v)
            }
            b'0'..=b'9' => {
                let start = self.pos;
                while self.pos < self.text.len()
                    && (self.text[self.pos].is_ascii_digit() || self.text[self.pos] == b'.')
                {
                    self.pos += 1;
                }
                std::str::from_utf8(&self.text[start..self.pos])
                    .ok()?
                    .parse()
                    .ok()
            }
            c if c.is_ascii_alphabetic()
                && self
                    .text
                    .get(self.pos + 1)
                    .is_none_or(|n| !(n.is_ascii_alphanumeric() || *n == b'_')) =>
            {
                self.pos += 1;
                self.table.get(&char::from(c)).copied()
            }
            _ => None,
        };
        self.depth -= 1;
        result
    }
}
