//! Parsing free-form solutions into graphs (reference §B.1), robust to any model output.
//!
//! Two step formats, chosen by the phrasing: *define* steps (`Define <name> as V; ...`, the
//! reference's) and *letter* steps (compact: `B = 3 . D = B + 2 = 5 .`, the quantity is named
//! by its letter). Within a step, assignments `L = chain` run to the next `.`, `;` or `,`.
//!
//! Deliberate differences from the reference parser, applied to gold and model text alike:
//! - dependencies are the single-letter *tokens* of the chain's first expression that name a
//!   variable (the reference takes every letter of the whole chain, so reverse-mode values
//!   such as `= x + 3` and words in its prose add parents the graph does not have);
//! - a chain also stops at `,` (so `We know d = 6, so we have ...` is just `d = 6`);
//! - values are evaluated once every assignment is known, so an expression in `x` gets its
//!   value when `x` is solved for later (the reference falls back to "the last number").
//!
//! In forward mode the two parsers give the same graph.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::plan::PhrasingSpec;

/// How solutions of a phrasing are laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceFormat {
    /// The word that opens a step (`Define`), or `None` when letters name quantities.
    pub keyword: Option<String>,
    /// The word between name and variable (`as`).
    pub connector: String,
    /// What precedes the final answer (`Answer:`).
    pub answer_marker: String,
}

impl TraceFormat {
    /// The format of a phrasing's solutions, read off its templates.
    #[must_use]
    pub fn of(phrasing: &PhrasingSpec) -> Self {
        let define = phrasing.template("define").unwrap_or("");
        let keyword = define
            .split("{name}")
            .next()
            .map(str::trim)
            .filter(|k| !k.is_empty() && define.contains("{name}"));
        let connector = define
            .split("{name}")
            .nth(1)
            .and_then(|rest| rest.split("{var}").next())
            .map_or("as", str::trim)
            .to_owned();
        let answer = phrasing.template("answer").unwrap_or("Answer: {value}");
        let marker = answer.split("{value}").next().map_or("Answer:", str::trim);
        Self {
            keyword: keyword.map(str::to_owned),
            connector: if connector.is_empty() {
                "as".to_owned()
            } else {
                connector
            },
            answer_marker: if marker.is_empty() {
                "Answer:".to_owned()
            } else {
                marker.to_owned()
            },
        }
    }

    /// The reference's format (`Define … as V;`, `Answer:`).
    #[must_use]
    pub fn reference() -> Self {
        Self {
            keyword: Some("Define".to_owned()),
            connector: "as".to_owned(),
            answer_marker: "Answer:".to_owned(),
        }
    }
}

/// One parsed quantity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParsedNode {
    /// The variable letter.
    pub var: char,
    /// The value, if one could be read.
    pub value: Option<f64>,
    /// The names of the quantities it depends on.
    pub deps: BTreeSet<String>,
}

/// A parsed solution: quantities by name, and the final answer.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ParsedSolution {
    /// Quantities by name.
    pub nodes: BTreeMap<String, ParsedNode>,
    /// The final answer, if found.
    pub answer: Option<f64>,
}

struct Assignment {
    lhs: char,
    /// The text after the last `=`.
    expr: String,
    /// The whole `L = chain` text (for the last-number fallback).
    text: String,
    /// Single-letter tokens of the chain.
    letters: Vec<char>,
}

struct Step {
    name: String,
    var: char,
    body: String,
}

/// Parses a solution (a model completion or a gold solution). Never panics.
#[must_use]
pub fn parse(text: &str, format: &TraceFormat) -> ParsedSolution {
    let answer = find_answer(text, &format.answer_marker);
    let clean = strip_tags(text);
    let steps = match &format.keyword {
        Some(keyword) => define_steps(&clean, keyword, &format.connector, &format.answer_marker),
        None => letter_steps(&clean, &format.answer_marker),
    };
    let all: Vec<Vec<Assignment>> = steps.iter().map(|s| assignments(&s.body)).collect();
    // Variables take values from assignments anywhere before the answer (in letter steps,
    // `x = 3` closes the solution outside any step).
    let scope = clean
        .find(&format.answer_marker)
        .map_or(clean.as_str(), |i| &clean[..i]);
    let everywhere = assignments(scope);
    let table = evaluate_all(&everywhere);
    let mut nodes: BTreeMap<String, ParsedNode> = BTreeMap::new();
    let mut previous: BTreeMap<char, String> = BTreeMap::new();
    for (step, assigns) in steps.iter().zip(&all) {
        let mut deps = BTreeSet::new();
        let mut intermediates: BTreeMap<char, BTreeSet<String>> = BTreeMap::new();
        let mut value = None;
        for a in assigns {
            let mut mapped = BTreeSet::new();
            for letter in &a.letters {
                if let Some(inner) = intermediates.get(letter) {
                    mapped.extend(inner.iter().cloned());
                } else if let Some(name) = previous.get(letter) {
                    mapped.insert(name.clone());
                }
            }
            if a.lhs == step.var {
                deps.extend(mapped);
                value = Some(evaluate(&a.expr, &table).or_else(|| last_number(&a.text)));
            } else {
                intermediates.insert(a.lhs, mapped);
            }
        }
        let value = value
            .flatten()
            .or_else(|| table.get(&step.var).copied())
            .or_else(|| last_number(&step.body));
        previous.insert(step.var, step.name.clone());
        nodes.insert(
            step.name.clone(),
            ParsedNode {
                var: step.var,
                value,
                deps,
            },
        );
    }
    ParsedSolution { nodes, answer }
}

/// `<answer> N`, else `MARKER N`.
fn find_answer(text: &str, marker: &str) -> Option<f64> {
    if let Some(i) = text.find("<answer>")
        && let Some(n) = leading_number(&text[i + "<answer>".len()..])
    {
        return Some(n);
    }
    text.find(marker)
        .and_then(|i| leading_number(&text[i + marker.len()..]))
}

/// `\s*([-+]?\d+(?:\.\d+)?)` at the start of `text`.
fn leading_number(text: &str) -> Option<f64> {
    let t = text.trim_start();
    let bytes = t.as_bytes();
    let mut end = usize::from(matches!(bytes.first(), Some(b'-' | b'+')));
    let digits_start = end;
    while end < bytes.len() && bytes[end].is_ascii_digit() {
        end += 1;
    }
    if end == digits_start {
        return None;
    }
    if end + 1 < bytes.len() && bytes[end] == b'.' && bytes[end + 1].is_ascii_digit() {
        end += 1;
        while end < bytes.len() && bytes[end].is_ascii_digit() {
            end += 1;
        }
    }
    t[..end].parse().ok()
}

/// Removes every `<...>` tag.
fn strip_tags(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        if let Some(close) = rest[open..].find('>') {
            rest = &rest[open + close + 1..];
        } else {
            out.push_str(&rest[open..]);
            rest = "";
        }
    }
    out.push_str(rest);
    out
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `KEYWORD name CONNECTOR [words] V;` headers and the bodies between them.
fn define_steps(text: &str, keyword: &str, connector: &str, marker: &str) -> Vec<Step> {
    let lower = text.to_lowercase();
    let key = keyword.to_lowercase();
    // Byte offsets of the keyword, case-insensitively (lowercasing can change lengths for
    // exotic characters: then positions are only used where they are char boundaries).
    let mut headers: Vec<(usize, usize, String, char)> = Vec::new();
    let mut search = 0;
    while let Some(found) = lower.get(search..).and_then(|s| s.find(&key)) {
        let start = search + found;
        search = start + key.len().max(1);
        let after = start + key.len();
        if !text.is_char_boundary(start)
            || !text.is_char_boundary(after.min(text.len()))
            || after > text.len()
        {
            continue;
        }
        if let Some((name, var, end)) = header(&text[after..], connector) {
            headers.push((start, after + end, name, var));
            search = after + end;
        }
    }
    let mut steps = Vec::with_capacity(headers.len());
    for (i, (_, end, name, var)) in headers.iter().enumerate() {
        let stop = headers.get(i + 1).map_or(text.len(), |h| h.0);
        let mut body = &text[*end..stop];
        if let Some(cut) = body.find(marker) {
            body = &body[..cut];
        }
        let mut name = name.clone();
        if let Some(last) = name.rfind(&format!("{keyword} ")) {
            name = name[last + keyword.len() + 1..].to_owned();
        }
        let name = clean_name(&name);
        steps.push(Step {
            name,
            var: *var,
            body: body.to_owned(),
        });
    }
    steps
}

/// After the keyword: `\s+(.*?)\s+(?:as|a)\s+(?:[A-Za-z]+\s+)*([A-Za-z]);`, lazily.
fn header(text: &str, connector: &str) -> Option<(String, char, usize)> {
    if !text.starts_with(char::is_whitespace) {
        return None;
    }
    let name_start = text.len() - text.trim_start().len();
    let line_end = text[name_start..]
        .find('\n')
        .map_or(text.len(), |i| name_start + i);
    for (j, c) in text[name_start..line_end].char_indices() {
        let j = name_start + j;
        if !c.is_whitespace() || j == name_start {
            continue;
        }
        let rest = text[j..].trim_start();
        let rest_at = text.len() - rest.len();
        for word in [connector, "a"] {
            let Some(after) = rest.strip_prefix(word).or_else(|| {
                rest.get(..word.len())
                    .filter(|p| p.eq_ignore_ascii_case(word))
                    .map(|_| &rest[word.len()..])
            }) else {
                continue;
            };
            if !after.starts_with(char::is_whitespace) {
                continue;
            }
            let Some(semi) = after.find(';') else {
                continue;
            };
            let words: Vec<&str> = after[..semi].split_whitespace().collect();
            let Some(last) = words.last() else { continue };
            let single = last.len() == 1 && last.chars().all(|c| c.is_ascii_alphabetic());
            let ends_clean = !after[..semi].ends_with(char::is_whitespace);
            if single
                && ends_clean
                && words
                    .iter()
                    .all(|w| w.chars().all(|c| c.is_ascii_alphabetic()))
            {
                let var = last.chars().next()?;
                let end = rest_at + (rest.len() - after.len()) + semi + 1;
                return Some((text[name_start..j].to_owned(), var, end));
            }
        }
    }
    None
}

/// Whitespace collapsed, U+FFFD dropped, ` .;` trimmed from both ends.
fn clean_name(name: &str) -> String {
    let collapsed: Vec<&str> = name.split_whitespace().collect();
    collapsed
        .join(" ")
        .replace('\u{FFFD}', "")
        .trim_matches(|c| c == ' ' || c == '.' || c == ';')
        .to_owned()
}

/// Letter steps: the text is cut at `.`; each piece's last assignment names the quantity
/// (its letter); `x` is never a quantity, only the unknown.
fn letter_steps(text: &str, marker: &str) -> Vec<Step> {
    let text = text.find(marker).map_or(text, |i| &text[..i]);
    text.split('.')
        .filter_map(|piece| {
            let last = assignments(piece)
                .into_iter()
                .rev()
                .find(|a| a.lhs != 'x')?;
            Some(Step {
                name: last.lhs.to_string(),
                var: last.lhs,
                body: piece.to_owned(),
            })
        })
        .collect()
}

/// Every `L = chain` in a step body: `([A-Za-z])\s*=\s*([^.;,]+)`.
fn assignments(body: &str) -> Vec<Assignment> {
    let chars: Vec<(usize, char)> = body.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (start, c) = chars[i];
        if !c.is_ascii_alphabetic() {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < chars.len() && chars[j].1.is_whitespace() {
            j += 1;
        }
        if j >= chars.len() || chars[j].1 != '=' || chars.get(j + 1).is_some_and(|(_, c)| *c == '=')
        {
            i += 1;
            continue;
        }
        let rhs_start = chars[j].0 + 1;
        let rhs_len = body[rhs_start..]
            .find(['.', ';', ','])
            .unwrap_or(body.len() - rhs_start);
        let chain = body[rhs_start..rhs_start + rhs_len].trim();
        if chain.is_empty() {
            i = j + 1;
            continue;
        }
        let expr = chain.rsplit('=').next().unwrap_or("").trim().to_owned();
        // Parents are the variables of the chain's first expression; later segments repeat
        // it with values substituted (which in reverse mode mention x).
        let letters = single_letters(chain.split('=').next().unwrap_or(""));
        out.push(Assignment {
            lhs: c,
            expr,
            text: body[start..rhs_start + rhs_len].to_owned(),
            letters,
        });
        let consumed = rhs_start + rhs_len;
        while i < chars.len() && chars[i].0 < consumed {
            i += 1;
        }
    }
    out
}

/// Letters standing alone as tokens (`A + B` has A and B; `so` has none).
fn single_letters(chain: &str) -> Vec<char> {
    let chars: Vec<char> = chain.chars().collect();
    (0..chars.len())
        .filter(|&i| {
            chars[i].is_ascii_alphabetic()
                && (i == 0 || !is_word_char(chars[i - 1]))
                && chars.get(i + 1).is_none_or(|c| !is_word_char(*c))
        })
        .map(|i| chars[i])
        .collect()
}

/// Variable values once every assignment is known: repeated passes until nothing changes.
fn evaluate_all(assignments: &[Assignment]) -> BTreeMap<char, f64> {
    let mut table = BTreeMap::new();
    for _ in 0..16 {
        let mut changed = false;
        for a in assignments {
            if let Some(v) = evaluate(&a.expr, &table)
                && table.insert(a.lhs, v) != Some(v)
            {
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    table
}

/// Substitutes variables and evaluates `+ - * / ( )` arithmetic; `None` if anything else is
/// left or the result is not finite.
fn evaluate(expr: &str, table: &BTreeMap<char, f64>) -> Option<f64> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '+' | '-' | '*' | '/' | '(' | ')' => {
                tokens.push(Token::Op(c));
                i += 1;
            }
            '0'..='9' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                tokens.push(Token::Num(
                    chars[start..i].iter().collect::<String>().parse().ok()?,
                ));
            }
            c if c.is_ascii_alphabetic() && chars.get(i + 1).is_none_or(|n| !is_word_char(*n)) => {
                tokens.push(Token::Num(*table.get(&c)?));
                i += 1;
            }
            _ => return None,
        }
    }
    let mut parser = Arith {
        tokens: &tokens,
        pos: 0,
        depth: 0,
    };
    let value = parser.sum()?;
    (parser.pos == tokens.len() && value.is_finite()).then_some(value)
}

#[derive(Debug, Clone, Copy)]
enum Token {
    Num(f64),
    Op(char),
}

struct Arith<'a> {
    tokens: &'a [Token],
    pos: usize,
    depth: usize,
}

impl Arith<'_> {
    fn peek(&self) -> Option<char> {
        match self.tokens.get(self.pos) {
            Some(Token::Op(c)) => Some(*c),
            _ => None,
        }
    }

    fn sum(&mut self) -> Option<f64> {
        let mut value = self.product()?;
        while let Some(op @ ('+' | '-')) = self.peek() {
            self.pos += 1;
            let rhs = self.product()?;
            value = if op == '+' { value + rhs } else { value - rhs };
        }
        Some(value)
    }

    fn product(&mut self) -> Option<f64> {
        let mut value = self.unary()?;
        while let Some(op @ ('*' | '/')) = self.peek() {
            self.pos += 1;
            let rhs = self.unary()?;
            value = if op == '*' { value * rhs } else { value / rhs };
        }
        Some(value)
    }

    fn unary(&mut self) -> Option<f64> {
        self.depth += 1;
        if self.depth > 64 {
            return None;
        }
        let result = match self.tokens.get(self.pos).copied() {
            Some(Token::Op('-')) => {
                self.pos += 1;
                self.unary().map(|v| -v)
            }
            Some(Token::Op('+')) => {
                self.pos += 1;
                self.unary()
            }
            Some(Token::Op('(')) => {
                self.pos += 1;
                let v = self.sum()?;
                if self.peek() != Some(')') {
                    return None;
                }
                self.pos += 1;
                Some(v)
            }
            Some(Token::Num(n)) => {
                self.pos += 1;
                Some(n)
            }
            _ => None,
        };
        self.depth -= 1;
        result
    }
}

/// The last number in a text (the reference's fallback for values it cannot evaluate).
fn last_number(text: &str) -> Option<f64> {
    let bytes = text.as_bytes();
    let mut end = bytes.len();
    while end > 0 {
        if bytes[end - 1].is_ascii_digit() {
            let mut start = end;
            while start > 0 && (bytes[start - 1].is_ascii_digit() || bytes[start - 1] == b'.') {
                start -= 1;
            }
            let digits = text[start..end].trim_start_matches('.');
            if start > 0 && bytes[start - 1] == b'-' {
                return format!("-{digits}").parse().ok();
            }
            return digits.parse().ok();
        }
        end -= 1;
    }
    None
}
