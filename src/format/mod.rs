//! `rlp fmt`: prints a file in canonical form, keeping its comments.
//!
//! The printer walks the parse tree (which keeps comments) and emits output lines, each
//! remembering the source range it came from. Comments are then put back by position: a
//! comment that followed code on its source line trails the output line holding that code;
//! a comment on a line of its own goes before the next code, at its indentation. Blank lines
//! between items and lines are kept (at most one); line breaks after commas are kept.

use pest::iterators::Pair;

use crate::diagnostics::SyntaxError;
use crate::syntax::parser::{Rule, is_noise, parse_tree};

const INDENT: usize = 4;

/// One line of output and the source bytes it covers.
#[derive(Debug)]
struct OutLine {
    indent: usize,
    text: String,
    first: usize,
    last: usize,
    comment: bool,
}

struct Printer<'s> {
    src: &'s str,
    lines: Vec<OutLine>,
}

/// Formats `.rlp` source. Fails only on a syntax error.
pub fn format_source(src: &str) -> Result<String, SyntaxError> {
    let file = parse_tree(src)?;
    let mut comments = Vec::new();
    collect_comments(file.clone(), &mut comments);
    let mut printer = Printer {
        src,
        lines: Vec::new(),
    };
    for item in file.into_inner() {
        match item.as_rule() {
            Rule::EOI | Rule::COMMENT => {}
            _ => printer.item(&item),
        }
    }
    let lines = place_comments(src, printer.lines, &comments);
    Ok(render(src, &lines))
}

fn collect_comments<'s>(pair: Pair<'s, Rule>, out: &mut Vec<(usize, usize, &'s str)>) {
    if pair.as_rule() == Rule::COMMENT {
        let span = pair.as_span();
        out.push((span.start(), span.end(), span.as_str().trim_end()));
        return;
    }
    for inner in pair.into_inner() {
        collect_comments(inner, out);
    }
}

impl Printer<'_> {
    fn open(&mut self, indent: usize, first: usize) {
        self.lines.push(OutLine {
            indent,
            text: String::new(),
            first,
            last: first,
            comment: false,
        });
    }

    fn push(&mut self, text: &str, end: usize) {
        if let Some(line) = self.lines.last_mut() {
            line.text.push_str(text);
            line.last = line.last.max(end);
        }
    }

    fn push_pair(&mut self, pair: &Pair<'_, Rule>) {
        self.push(pair.as_str(), pair.as_span().end());
    }

    fn space(&mut self) {
        if let Some(line) = self.lines.last_mut()
            && !line.text.is_empty()
            && !line.text.ends_with(' ')
        {
            line.text.push(' ');
        }
    }

    fn item(&mut self, item: &Pair<'_, Rule>) {
        let start = item.as_span().start();
        self.open(0, start);
        match item.as_rule() {
            Rule::block_item => self.block_item(item),
            Rule::sweep_item => self.sweep(item),
            Rule::reward_item => {
                let mut parts = significant(item);
                self.push("reward ", start);
                if let Some(name) = parts.next() {
                    self.push_pair(&name);
                }
                self.push(" = ", start);
                if let Some(expr) = parts.next() {
                    self.expr(&expr);
                }
            }
            Rule::use_item | Rule::seed_item | Rule::budget_item => {
                let keyword = match item.as_rule() {
                    Rule::use_item => "use",
                    Rule::seed_item => "seed",
                    _ => "budget",
                };
                self.push(keyword, start);
                for part in significant(item) {
                    if part.as_rule() == Rule::budget_rate {
                        self.push(" where", part.as_span().start());
                        for (i, p) in significant(&part).enumerate() {
                            self.push(if i == 1 { " = " } else { " " }, p.as_span().start());
                            self.atom(&p);
                        }
                    } else {
                        let is_amount =
                            item.as_rule() == Rule::budget_item && part.as_rule() != Rule::name;
                        self.push(if is_amount { " = " } else { " " }, part.as_span().start());
                        self.atom(&part);
                    }
                }
            }
            _ => {}
        }
    }

    fn block_item(&mut self, item: &Pair<'_, Rule>) {
        for part in significant(item) {
            match part.as_rule() {
                Rule::block_kind | Rule::name => {
                    self.space();
                    self.push_pair(&part);
                }
                Rule::from_clause => {
                    self.space();
                    self.push("from ", part.as_span().start());
                    if let Some(parent) = significant(&part).next() {
                        self.push_pair(&parent);
                    }
                }
                Rule::block => self.block(&part),
                _ => {}
            }
        }
    }

    fn block(&mut self, block: &Pair<'_, Rule>) {
        let span = block.as_span();
        let lines: Vec<_> = significant(block).collect();
        if lines.is_empty() {
            self.push(" {}", span.end());
            return;
        }
        self.push(" {", span.start() + 1);
        for line in &lines {
            self.open(INDENT, line.as_span().start());
            self.line(line, INDENT);
        }
        self.open(0, span.end() - 1);
        self.push("}", span.end());
    }

    /// A block line: atoms separated by spaces; a break after a comma is kept.
    fn line(&mut self, line: &Pair<'_, Rule>, indent: usize) {
        let mut after_comma = false;
        let mut prev_end = line.as_span().start();
        for part in significant(line) {
            if part.as_rule() == Rule::comma {
                self.push(",", part.as_span().end());
                after_comma = true;
                prev_end = part.as_span().end();
                continue;
            }
            let start = part.as_span().start();
            if after_comma && self.src[prev_end..start].contains('\n') {
                self.open(indent + INDENT, start);
            } else {
                self.space();
            }
            self.atom(&part);
            after_comma = false;
            prev_end = part.as_span().end();
        }
    }

    fn sweep(&mut self, item: &Pair<'_, Rule>) {
        let span = item.as_span();
        self.push("sweep ", span.start());
        let mut parts = significant(item);
        if let Some(name) = parts.next() {
            self.push_pair(&name);
        }
        self.push(" = [", span.start());
        let mut after_comma = false;
        let mut prev_end = span.start();
        let mut first = true;
        let mut zip = None;
        for part in parts {
            if part.as_rule() == Rule::sweep_zip {
                zip = Some(part);
                continue;
            }
            if part.as_rule() == Rule::comma {
                after_comma = true;
                prev_end = part.as_span().end();
                continue;
            }
            let start = part.as_span().start();
            if !first {
                self.push(",", prev_end);
                if after_comma && self.src[prev_end..start].contains('\n') {
                    self.open(INDENT, start);
                } else {
                    self.push(" ", start);
                }
            }
            self.atom(&part);
            first = false;
            after_comma = false;
            prev_end = part.as_span().end();
        }
        self.push("]", span.end());
        if let Some(zip) = zip
            && let Some(other) = significant(&zip).next()
        {
            self.push(" zip ", zip.as_span().start());
            self.push_pair(&other);
        }
    }

    fn atom(&mut self, atom: &Pair<'_, Rule>) {
        match atom.as_rule() {
            Rule::source => {
                let mut parts = significant(atom).filter(|p| p.as_rule() != Rule::comma);
                if let Some(task) = parts.next() {
                    self.push_pair(&task);
                }
                self.push("[", atom.as_span().start());
                for (i, arg) in parts.enumerate() {
                    if i > 0 {
                        self.push(", ", arg.as_span().start());
                    }
                    for (j, value) in significant(&arg).enumerate() {
                        self.push(
                            match j {
                                0 => "",
                                1 => " ",
                                _ => " | ",
                            },
                            value.as_span().start(),
                        );
                        self.atom(&value);
                    }
                }
                self.push("]", atom.as_span().end());
            }
            _ => self.push_pair(atom),
        }
    }

    fn expr(&mut self, expr: &Pair<'_, Rule>) {
        match expr.as_rule() {
            Rule::expr => {
                for inner in significant(expr) {
                    self.expr(&inner);
                }
            }
            Rule::if_expr => {
                let parts: Vec<_> = significant(expr).collect();
                self.push("if ", expr.as_span().start());
                self.expr(&parts[0]);
                self.push(" { ", expr.as_span().start());
                self.expr(&parts[1]);
                self.push(" } else ", expr.as_span().start());
                if parts[2].as_rule() == Rule::if_expr {
                    self.expr(&parts[2]);
                } else {
                    self.push("{ ", expr.as_span().start());
                    self.expr(&parts[2]);
                    self.push(" }", expr.as_span().end());
                }
            }
            Rule::compare | Rule::sum | Rule::product => {
                for (i, part) in significant(expr).enumerate() {
                    if i % 2 == 1 {
                        self.push(&format!(" {} ", part.as_str()), part.as_span().end());
                    } else {
                        self.expr(&part);
                    }
                }
            }
            Rule::unary => {
                for part in significant(expr) {
                    match part.as_rule() {
                        Rule::neg => self.push("-", part.as_span().end()),
                        Rule::expr => {
                            self.push("(", part.as_span().start());
                            self.expr(&part);
                            self.push(")", part.as_span().end());
                        }
                        _ => self.expr(&part),
                    }
                }
            }
            Rule::call => {
                let mut parts = significant(expr);
                if let Some(name) = parts.next() {
                    self.push_pair(&name);
                }
                self.push("(", expr.as_span().start());
                for (i, arg) in parts.enumerate() {
                    if i > 0 {
                        self.push(", ", arg.as_span().start());
                    }
                    self.expr(&arg);
                }
                self.push(")", expr.as_span().end());
            }
            _ => self.push_pair(expr),
        }
    }
}

fn significant<'s>(pair: &Pair<'s, Rule>) -> impl Iterator<Item = Pair<'s, Rule>> {
    pair.clone().into_inner().filter(|p| !is_noise(p.as_rule()))
}

/// Puts comments back among the output lines (see the module docs).
fn place_comments(
    src: &str,
    mut lines: Vec<OutLine>,
    comments: &[(usize, usize, &str)],
) -> Vec<OutLine> {
    for &(start, end, text) in comments {
        let line_start = src[..start].rfind('\n').map_or(0, |i| i + 1);
        let trailing = !src[line_start..start].trim().is_empty();
        if trailing
            && let Some(line) = lines
                .iter_mut()
                .filter(|l| !l.comment && l.last <= start)
                .max_by_key(|l| l.last)
        {
            line.text.push_str("  ");
            line.text.push_str(text);
            continue;
        }
        let at = lines
            .iter()
            .position(|l| l.first > start)
            .unwrap_or(lines.len());
        let indent = match lines.get(at) {
            Some(next) if next.text.starts_with('}') => next.indent + INDENT,
            Some(next) => next.indent,
            None => 0,
        };
        lines.insert(
            at,
            OutLine {
                indent,
                text: text.to_owned(),
                first: start,
                last: end,
                comment: true,
            },
        );
    }
    lines
}

fn render(src: &str, lines: &[OutLine]) -> String {
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            let prev = &lines[i - 1];
            let gap = src.get(prev.last.min(line.first)..line.first).unwrap_or("");
            let gap_lines: Vec<&str> = gap.split('\n').collect();
            let blank = gap_lines.len() >= 3
                && gap_lines[1..gap_lines.len() - 1]
                    .iter()
                    .any(|l| l.trim().is_empty());
            let after_open = prev.text.ends_with('{') && !prev.comment;
            let before_close = line.text.starts_with('}') && !line.comment;
            if blank && !after_open && !before_close {
                out.push('\n');
            }
        }
        out.push_str(&" ".repeat(line.indent));
        out.push_str(&line.text);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::format_source;

    #[test]
    fn layout_is_normalised_and_comments_kept() {
        let src = "# top\nmodel  m{layers 4;hidden 128 # wide\n\n\n   heads 4}\nseed   7\n";
        let out = format_source(src).unwrap();
        assert_eq!(
            out,
            "# top\nmodel m {\n    layers 4\n    hidden 128  # wide\n\n    heads 4\n}\nseed 7\n"
        );
        assert_eq!(format_source(&out).unwrap(), out);
    }

    #[test]
    fn expressions_get_canonical_spacing() {
        let out = format_source("reward r=answer*(0.2+0.8*process)\n").unwrap();
        assert_eq!(out, "reward r = answer * (0.2 + 0.8 * process)\n");
    }
}
