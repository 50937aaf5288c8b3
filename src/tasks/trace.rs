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
//!   value when `x` is solved for later (the reference falls back to "the last number");
//! - every equation a step writes must hold at those values: each link of a chain
//!   `A = 1 + H = 1 + 5 = 6` and each equation-solving step (`4*x - 12 = 0`), or the step
//!   counts as a value mismatch (the reference checks only the last number of a chain).
//!
//! In forward mode the two parsers give the same graph.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::arith::{equations_hold, evaluate};
use crate::plan::PhrasingSpec;
use crate::plan::template::Slot;

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
        let define = phrasing.template(Slot::Define);
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
        let answer = phrasing.template(Slot::Answer);
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
    /// Whether every equation the step writes holds (its chains and, in reverse mode, the
    /// equation-solving steps that follow it).
    pub consistent: bool,
}

/// A parsed solution: quantities by name, and the final answer.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ParsedSolution {
    /// Quantities by name.
    pub nodes: BTreeMap<String, ParsedNode>,
    /// The final answer, if found.
    pub answer: Option<f64>,
}

struct Assignment<'a> {
    lhs: char,
    /// The text after the last `=`.
    expr: &'a str,
    /// The whole `L = chain` text (for the last-number fallback).
    text: &'a str,
    /// Single-letter tokens of the chain's first expression, as a bit set over A–Z, a–z.
    letters: u64,
}

/// The bit of an ASCII letter in a letter set.
fn letter_bit(c: u8) -> u64 {
    match c {
        b'A'..=b'Z' => 1 << (c - b'A'),
        b'a'..=b'z' => 1 << (26 + c - b'a'),
        _ => 0,
    }
}

struct Step<'a> {
    name: String,
    var: char,
    body: &'a str,
    /// Text after the step that assigns no quantity but whose equations the step answers for
    /// (letter steps: `4*x = 12 . x = 3 .` after the step that closes a reverse chain).
    tail: Vec<&'a str>,
}

/// Parses a solution (a model completion or a gold solution). Never panics.
#[must_use]
pub fn parse(text: &str, format: &TraceFormat) -> ParsedSolution {
    let answer = find_answer(text, &format.answer_marker);
    let clean = strip_tags(text);
    // Steps, and the text outside steps that can still assign variables (the preamble; in
    // letter steps, `x = 3` closing the solution).
    let (steps, outside) = match &format.keyword {
        Some(keyword) => define_steps(&clean, keyword, &format.connector, &format.answer_marker),
        None => letter_steps(&clean, &format.answer_marker),
    };
    let all: Vec<Vec<Assignment>> = steps.iter().map(|s| assignments(s.body)).collect();
    let extra: Vec<Assignment> = outside.iter().flat_map(|t| assignments(t)).collect();
    let table = evaluate_all(all.iter().flatten().chain(&extra));
    let mut nodes: BTreeMap<String, ParsedNode> = BTreeMap::new();
    let mut previous: BTreeMap<char, usize> = BTreeMap::new();
    for (index, (step, assigns)) in steps.iter().zip(&all).enumerate() {
        let mut deps: BTreeSet<usize> = BTreeSet::new();
        let mut intermediates: BTreeMap<char, BTreeSet<usize>> = BTreeMap::new();
        let mut value = None;
        for a in assigns {
            let mut mapped = BTreeSet::new();
            let mut bits = a.letters;
            while bits != 0 {
                let bit = bits.trailing_zeros() as u8;
                bits &= bits - 1;
                let letter = char::from(if bit < 26 {
                    b'A' + bit
                } else {
                    b'a' + bit - 26
                });
                if let Some(inner) = intermediates.get(&letter) {
                    mapped.extend(inner.iter().copied());
                } else if let Some(&step) = previous.get(&letter) {
                    mapped.insert(step);
                }
            }
            if a.lhs == step.var {
                deps.extend(mapped);
                value = Some(evaluate(a.expr, &table).or_else(|| last_number(a.text)));
            } else {
                intermediates.insert(a.lhs, mapped);
            }
        }
        let value = value
            .flatten()
            .or_else(|| table.get(&step.var).copied())
            .or_else(|| last_number(step.body));
        previous.insert(step.var, index);
        let consistent = std::iter::once(step.body)
            .chain(step.tail.iter().copied())
            .all(|text| equations_hold(text, &table));
        let deps = deps.into_iter().map(|d| steps[d].name.clone()).collect();
        nodes.insert(
            step.name.clone(),
            ParsedNode {
                var: step.var,
                value,
                deps,
                consistent,
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

/// `KEYWORD name CONNECTOR [words] V;` headers and the bodies between them.
fn define_steps<'a>(
    text: &'a str,
    keyword: &str,
    connector: &str,
    marker: &str,
) -> (Vec<Step<'a>>, Vec<&'a str>) {
    let mut headers: Vec<(usize, usize, String, char)> = Vec::new();
    let mut search = 0;
    while let Some(start) = find_ignore_ascii_case(text, keyword, search) {
        let after = start + keyword.len();
        search = after;
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
        // A name swallowing an earlier, broken header keeps the text after the last keyword.
        let after_keyword = name
            .rmatch_indices(keyword)
            .map(|(i, _)| i + keyword.len())
            .find(|&e| name[e..].starts_with(' '));
        let name = clean_name(after_keyword.map_or(name.as_str(), |e| &name[e + 1..]));
        steps.push(Step {
            name,
            var: *var,
            body,
            tail: Vec::new(),
        });
    }
    let preamble = headers.first().map_or(text, |h| &text[..h.0]);
    let preamble = preamble.find(marker).map_or(preamble, |i| &preamble[..i]);
    (steps, vec![preamble])
}

/// After the keyword: `\s+(.*?)\s+(?:as|a)\s+(?:[A-Za-z]+\s+)*([A-Za-z]);`, lazily.
fn header(text: &str, connector: &str) -> Option<(String, char, usize)> {
    if !text.starts_with(char::is_whitespace) {
        return None;
    }
    let name_start = text.len() - text.trim_start().len();
    for (j, c) in text[name_start..].char_indices() {
        let j = name_start + j;
        if c == '\n' {
            break; // the name does not cross a line
        }
        if !c.is_whitespace() || j == name_start {
            continue;
        }
        let rest = text[j..].trim_start();
        let rest_at = text.len() - rest.len();
        for word in [connector, "a"] {
            let Some(after) = rest
                .get(..word.len())
                .filter(|p| p.eq_ignore_ascii_case(word))
                .map(|_| &rest[word.len()..])
            else {
                continue;
            };
            if !after.starts_with(char::is_whitespace) {
                continue;
            }
            // No `;` ahead means no later candidate can end a header either.
            let semi = after.find(';')?;
            let segment = &after[..semi];
            if segment.ends_with(char::is_whitespace) {
                continue;
            }
            let mut words = segment.split_whitespace().peekable();
            let mut last = None;
            let mut ok = true;
            while let Some(w) = words.next() {
                ok &= w.bytes().all(|b| b.is_ascii_alphabetic());
                if words.peek().is_none() {
                    last = Some(w);
                }
            }
            if let Some(last) = last.filter(|l| ok && l.len() == 1) {
                let var = char::from(last.as_bytes()[0]);
                let end = rest_at + (rest.len() - after.len()) + semi + 1;
                return Some((text[name_start..j].to_owned(), var, end));
            }
        }
    }
    None
}

/// The first occurrence of an ASCII `needle` in `haystack` at or after `from`, ignoring ASCII
/// case; always at a char boundary.
fn find_ignore_ascii_case(haystack: &str, needle: &str, from: usize) -> Option<usize> {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    let first = n.first()?.to_ascii_lowercase();
    (from..=h.len().checked_sub(n.len())?)
        .find(|&i| h[i].to_ascii_lowercase() == first && h[i..i + n.len()].eq_ignore_ascii_case(n))
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
fn letter_steps<'a>(text: &'a str, marker: &str) -> (Vec<Step<'a>>, Vec<&'a str>) {
    let text = text.find(marker).map_or(text, |i| &text[..i]);
    let mut steps = Vec::new();
    let mut outside = Vec::new();
    for piece in text.split('.') {
        if let Some(last) = assignments(piece).into_iter().rev().find(|a| a.lhs != 'x') {
            steps.push(Step {
                name: last.lhs.to_string(),
                var: last.lhs,
                body: piece,
                tail: Vec::new(),
            });
        } else {
            if let Some(step) = steps.last_mut() {
                step.tail.push(piece);
            }
            outside.push(piece);
        }
    }
    (steps, outside)
}

/// Every `L = chain` in a step body: `([A-Za-z])\s*=\s*([^.;,]+)`. Works on bytes: every
/// character it looks for is ASCII, so matches always fall on char boundaries.
fn assignments(body: &str) -> Vec<Assignment<'_>> {
    let b = body.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_alphabetic() {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if j >= b.len() || b[j] != b'=' || b.get(j + 1) == Some(&b'=') {
            i += 1;
            continue;
        }
        let rhs_start = j + 1;
        let rhs_end = b[rhs_start..]
            .iter()
            .position(|c| matches!(c, b'.' | b';' | b','))
            .map_or(b.len(), |k| rhs_start + k);
        let chain = body[rhs_start..rhs_end].trim();
        if chain.is_empty() {
            i = j + 1;
            continue;
        }
        let expr = chain.rsplit('=').next().unwrap_or("").trim();
        // Parents are the variables of the chain's first expression; later segments repeat
        // it with values substituted (which in reverse mode mention x).
        let letters = single_letters(chain.split('=').next().unwrap_or(""));
        out.push(Assignment {
            lhs: char::from(b[i]),
            expr,
            text: &body[i..rhs_end],
            letters,
        });
        i = rhs_end;
    }
    out
}

/// Letters standing alone as tokens (`A + B` has A and B; `so` has none), as a bit set.
fn single_letters(chain: &str) -> u64 {
    let b = chain.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80;
    (0..b.len())
        .filter(|&i| {
            b[i].is_ascii_alphabetic()
                && (i == 0 || !word(b[i - 1]))
                && b.get(i + 1).is_none_or(|&c| !word(c))
        })
        .fold(0, |set, i| set | letter_bit(b[i]))
}

/// Variable values once every assignment is known: passes in order until nothing changes
/// (one pass when every assignment could be evaluated and no letter is assigned twice).
#[allow(clippy::needless_pass_by_value)] // a cheap, cloneable iterator over borrowed items
fn evaluate_all<'a, 'b: 'a>(
    assignments: impl Iterator<Item = &'a Assignment<'b>> + Clone,
) -> BTreeMap<char, f64> {
    let mut table = BTreeMap::new();
    for _ in 0..16 {
        let mut changed = false;
        let mut settled = true;
        for a in assignments.clone() {
            match evaluate(a.expr, &table) {
                Some(v) => {
                    if let Some(old) = table.insert(a.lhs, v) {
                        settled = false;
                        changed |= old.to_bits() != v.to_bits();
                    } else {
                        changed = true;
                    }
                }
                None => settled = false,
            }
        }
        if settled || !changed {
            break;
        }
    }
    table
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
