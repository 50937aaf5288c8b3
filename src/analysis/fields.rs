//! Reading block lines: which fields a block has, and typed readers over a line's atoms.
//!
//! Blocks are generic in the grammar (`key value ...` lines), so this is where a line becomes
//! a typed value, and where unknown, repeated, missing and ill-typed fields are reported.

use std::borrow::Cow;

use std::collections::BTreeMap;

use super::suggest;
use crate::diagnostics::{AnalysisError, Diagnostic};
use crate::syntax::Span;
use crate::syntax::ast::{Atom, Block, Line, Number, Suffix};

/// Sweep-variable bindings in force while a block is read.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Env<'a> {
    /// Outside stages, mixtures and evals: sweep variables are not allowed.
    Fixed,
    /// Inside a cell: each variable has one value.
    Cell(&'a Bindings),
}

/// A cell's sweep values.
#[derive(Debug, Default)]
pub(crate) struct Bindings {
    /// Variable → value.
    pub(crate) values: BTreeMap<String, Atom>,
    /// Sweeps that are themselves invalid (already reported): their uses are skipped quietly.
    pub(crate) poisoned: std::collections::BTreeSet<String>,
}

/// The lines of a block, by field name.
pub(crate) struct Fields<'a> {
    block: &'a Block,
    by_key: BTreeMap<&'a str, Vec<&'a Line>>,
    /// Fields that an unknown field was probably a typo of: not reported missing as well.
    misspelt: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    /// Sorts a block's lines by field, reporting unknown and repeated fields. Fields in
    /// `repeatable` may appear on several lines.
    pub(crate) fn collect(
        block: &'a Block,
        allowed: &[&'static str],
        repeatable: &[&'static str],
        sink: &mut Vec<Diagnostic>,
    ) -> Self {
        let mut by_key: BTreeMap<&'a str, Vec<&'a Line>> = BTreeMap::new();
        let mut misspelt = Vec::new();
        for line in &block.lines {
            let Atom::Name(key) = line.key() else {
                sink.push(
                    AnalysisError::WrongValue {
                        expected: "a field name".to_owned(),
                        found: line.key().describe().to_owned(),
                        span: line.key().span(),
                        help: suggest::help("", allowed.iter().copied(), "fields of this block"),
                    }
                    .into(),
                );
                continue;
            };
            let Some(field) = allowed.iter().find(|f| **f == key.text) else {
                if let Some(intended) = suggest::closest(&key.text, allowed.iter().copied()) {
                    misspelt.push(intended);
                }
                sink.push(
                    AnalysisError::UnknownField {
                        block: block.kind.text.clone(),
                        field: key.text.clone(),
                        span: key.span,
                        help: suggest::help(&key.text, allowed.iter().copied(), "its fields are"),
                    }
                    .into(),
                );
                continue;
            };
            let lines = by_key.entry(field).or_default();
            if let Some(first) = lines.first()
                && !repeatable.contains(field)
            {
                sink.push(
                    AnalysisError::DuplicateField {
                        field: key.text.clone(),
                        span: key.span,
                        first: first.key().span(),
                    }
                    .into(),
                );
                continue;
            }
            lines.push(line);
        }
        Self {
            block,
            by_key,
            misspelt,
        }
    }

    /// The line of a field given at most once.
    pub(crate) fn get(&self, field: &str) -> Option<&'a Line> {
        self.by_key
            .get(field)
            .and_then(|lines| lines.first().copied())
    }

    /// Every line of a repeatable field.
    pub(crate) fn all(&self, field: &str) -> &[&'a Line] {
        self.by_key.get(field).map_or(&[], Vec::as_slice)
    }

    /// The line of a required field; reports it missing otherwise.
    pub(crate) fn require(
        &self,
        field: &'static str,
        example: &str,
        sink: &mut Vec<Diagnostic>,
    ) -> Option<&'a Line> {
        let line = self.get(field);
        if line.is_none() && !self.misspelt.contains(&field) {
            sink.push(
                AnalysisError::MissingField {
                    block: self.block.kind.text.clone(),
                    field,
                    span: self.header_span(),
                    help: Some(format!("add a line such as `{example}`")),
                }
                .into(),
            );
        }
        line
    }

    /// The block's header (kind and name), where "missing" problems point.
    pub(crate) fn header_span(&self) -> Span {
        header_span(self.block)
    }
}

/// Reads a one-value field with `read` (then checks nothing is left on the line), or gives
/// `default` when the field is absent. `None` means a problem was reported.
pub(crate) fn single<T>(
    line: Option<&Line>,
    env: Env<'_>,
    sink: &mut Vec<Diagnostic>,
    default: T,
    read: impl FnOnce(&mut Reader<'_>) -> Option<T>,
) -> Option<T> {
    let Some(line) = line else {
        return Some(default);
    };
    let mut r = Reader::new(line, env, "field VALUE", sink)?;
    let value = read(&mut r)?;
    r.finish();
    Some(value)
}

/// The span of a block's kind and name.
pub(crate) fn header_span(block: &Block) -> Span {
    let end = block.name.as_ref().map_or(block.kind.span, |n| n.span);
    block.kind.span.to(end)
}

/// Resolves `$var` atoms against the environment. Unknown variables and variables outside a
/// cell are reported, and the line is read without them.
pub(crate) fn resolve<'a>(
    atoms: &'a [Atom],
    env: Env<'_>,
    sink: &mut Vec<Diagnostic>,
) -> Option<Cow<'a, [Atom]>> {
    // Most lines have no variable: they are read as written, without a copy.
    if !atoms.iter().any(has_var) {
        return Some(Cow::Borrowed(atoms));
    }
    let mut out = Vec::with_capacity(atoms.len());
    let mut ok = true;
    for atom in atoms {
        match atom {
            Atom::Var(var) => match substitute(var, env, sink) {
                Some(value) => out.push(value),
                None => ok = false,
            },
            Atom::Source(source) => {
                let mut source = source.clone();
                for arg in &mut source.args {
                    match resolve(&arg.values, env, sink) {
                        Some(values) => arg.values = values.into_owned(),
                        None => ok = false,
                    }
                }
                out.push(Atom::Source(source));
            }
            other => out.push(other.clone()),
        }
    }
    ok.then_some(Cow::Owned(out))
}

/// Whether an atom is, or a source's argument holds, a sweep variable.
fn has_var(atom: &Atom) -> bool {
    match atom {
        Atom::Var(_) => true,
        Atom::Source(source) => source.args.iter().any(|a| a.values.iter().any(has_var)),
        _ => false,
    }
}

/// The value of `$var` in this environment, re-spanned to the use site.
pub(crate) fn substitute(
    var: &crate::syntax::ast::Name,
    env: Env<'_>,
    sink: &mut Vec<Diagnostic>,
) -> Option<Atom> {
    match env {
        Env::Fixed => {
            sink.push(
                AnalysisError::WrongValue {
                    expected: "a fixed value".to_owned(),
                    found: format!("`${}`", var.text),
                    span: var.span,
                    help: Some(
                        "sweep variables can be used in stages, mixtures and evals only".to_owned(),
                    ),
                }
                .into(),
            );
            None
        }
        Env::Cell(bindings) => match bindings.values.get(&var.text) {
            Some(value) => Some(respan(value, var.span)),
            None if bindings.poisoned.contains(&var.text) => None,
            None => {
                sink.push(
                    AnalysisError::UnknownSweepVariable {
                        name: var.text.clone(),
                        span: var.span,
                        help: suggest::help(
                            &var.text,
                            bindings.values.keys().map(String::as_str),
                            "the sweep variables are",
                        )
                        .or_else(|| Some(format!("define it with `sweep {} = [...]`", var.text))),
                    }
                    .into(),
                );
                None
            }
        },
    }
}

/// A copy of an atom whose spans point at `span` (a sweep variable's use site).
fn respan(atom: &Atom, span: Span) -> Atom {
    let mut atom = atom.clone();
    match &mut atom {
        Atom::Name(n) | Atom::Var(n) => n.span = span,
        Atom::Number(n) => n.span = span,
        Atom::Range(r) => {
            r.span = span;
            r.lo.span = span;
            r.hi.span = span;
        }
        Atom::Str(s) => s.span = span,
        Atom::Arrow(s) => *s = span,
        Atom::Source(s) => s.span = span,
    }
    atom
}

/// A cursor over one line's values (after its key), group by group.
pub(crate) struct Reader<'s> {
    field: String,
    groups: Vec<Cow<'s, [Atom]>>,
    group: usize,
    index: usize,
    end: Span,
    syntax: &'static str,
    pub(crate) sink: &'s mut Vec<Diagnostic>,
}

impl<'s> Reader<'s> {
    /// A reader over `line`'s values; `syntax` is shown in help when a value is wrong.
    /// Returns `None` (after reporting) if a sweep variable could not be resolved.
    pub(crate) fn new(
        line: &'s Line,
        env: Env<'_>,
        syntax: &'static str,
        sink: &'s mut Vec<Diagnostic>,
    ) -> Option<Self> {
        Self::with_key(line, env, syntax, sink, true)
    }

    /// Like [`Reader::new`], but the first atom is a value, not a key (mixture lines).
    pub(crate) fn keyless(
        line: &'s Line,
        env: Env<'_>,
        syntax: &'static str,
        sink: &'s mut Vec<Diagnostic>,
    ) -> Option<Self> {
        Self::with_key(line, env, syntax, sink, false)
    }

    fn with_key(
        line: &'s Line,
        env: Env<'_>,
        syntax: &'static str,
        sink: &'s mut Vec<Diagnostic>,
        skip_key: bool,
    ) -> Option<Self> {
        let field = match line.key() {
            Atom::Name(n) => n.text.clone(),
            other => other.describe().to_owned(),
        };
        let mut groups = Vec::with_capacity(line.groups.len());
        let mut ok = true;
        for (i, group) in line.groups.iter().enumerate() {
            let atoms = if i == 0 && skip_key {
                &group[1..]
            } else {
                &group[..]
            };
            match resolve(atoms, env, sink) {
                Some(resolved) => groups.push(resolved),
                None => ok = false,
            }
        }
        let end = Span::new(line.span.end, line.span.end);
        ok.then_some(Self {
            field,
            groups,
            group: 0,
            index: 0,
            end,
            syntax,
            sink,
        })
    }

    /// The field's name.
    pub(crate) fn field(&self) -> &str {
        &self.field
    }

    fn report(&mut self, error: AnalysisError) {
        self.sink.push(error.into());
    }

    /// The next atom of the current group, without consuming it.
    pub(crate) fn peek(&self) -> Option<&Atom> {
        self.groups.get(self.group).and_then(|g| g.get(self.index))
    }

    /// Whether the current group has no more atoms.
    pub(crate) fn group_done(&self) -> bool {
        self.peek().is_none()
    }

    /// Moves to the next comma-separated group; false if there is none.
    pub(crate) fn next_group(&mut self) -> bool {
        if self.group + 1 < self.groups.len() {
            self.group += 1;
            self.index = 0;
            true
        } else {
            false
        }
    }

    /// The next atom, or a report that `expected` is missing.
    pub(crate) fn atom(&mut self, expected: &str) -> Option<Atom> {
        let atom = self.peek().cloned();
        if let Some(atom) = atom {
            self.index += 1;
            Some(atom)
        } else {
            let span = self.end;
            let help = Some(format!("write `{}`", self.syntax));
            self.report(AnalysisError::WrongValue {
                expected: expected.to_owned(),
                found: "nothing".to_owned(),
                span,
                help,
            });
            None
        }
    }

    /// Reports that `atom` is not what was expected.
    pub(crate) fn wrong(&mut self, expected: &str, atom: &Atom) {
        let help = Some(format!("write `{}`", self.syntax));
        self.report(AnalysisError::WrongValue {
            expected: expected.to_owned(),
            found: atom.describe().to_owned(),
            span: atom.span(),
            help,
        });
    }

    /// Reports an out-of-range value.
    pub(crate) fn out_of_range(&mut self, what: &str, allowed: &str, value: String, span: Span) {
        self.report(AnalysisError::ValueOutOfRange {
            what: what.to_owned(),
            allowed: allowed.to_owned(),
            value,
            span,
            help: None,
        });
    }

    /// A number (suffixes allowed, percent included).
    pub(crate) fn number(&mut self, expected: &str) -> Option<(f64, Number)> {
        match self.atom(expected)? {
            Atom::Number(n) => Some((n.value(), n)),
            other => {
                self.wrong(expected, &other);
                None
            }
        }
    }

    /// A number within `[lo, hi]`, percentages not allowed.
    pub(crate) fn real(&mut self, what: &str, lo: f64, hi: f64) -> Option<f64> {
        let (value, n) = self.number(what)?;
        if n.suffix == Some(Suffix::Percent) {
            self.wrong(what, &Atom::Number(n));
            return None;
        }
        if !(lo..=hi).contains(&value) {
            let allowed = range_text(lo, hi);
            self.out_of_range(what, &allowed, format_number(value), n.span);
            return None;
        }
        Some(value)
    }

    /// A whole number within `[lo, hi]` (suffixes such as `20M` allowed).
    pub(crate) fn int(&mut self, what: &str, lo: i64, hi: i64) -> Option<i64> {
        let (value, n) = self.number(what)?;
        if n.suffix == Some(Suffix::Percent) || value.fract() != 0.0 {
            self.wrong(&format!("{what} (a whole number)"), &Atom::Number(n));
            return None;
        }
        if value < lo as f64 || value > hi as f64 {
            let allowed = range_text(lo as f64, hi as f64);
            self.out_of_range(what, &allowed, format_number(value), n.span);
            return None;
        }
        Some(value as i64)
    }

    /// A share: `5%` or a fraction in [0, 1].
    pub(crate) fn share(&mut self, what: &str) -> Option<f64> {
        let (value, n) = self.number(what)?;
        if !(0.0..=1.0).contains(&value) {
            let shown = if n.suffix == Some(Suffix::Percent) {
                format!("{}%", n.text)
            } else {
                format_number(value)
            };
            self.out_of_range(what, "between 0% and 100%", shown, n.span);
            return None;
        }
        Some(value)
    }

    /// A name.
    pub(crate) fn name(&mut self, expected: &str) -> Option<crate::syntax::ast::Name> {
        match self.atom(expected)? {
            Atom::Name(n) => Some(n),
            other => {
                self.wrong(expected, &other);
                None
            }
        }
    }

    /// One of a fixed set of words.
    pub(crate) fn word(
        &mut self,
        expected: &str,
        choices: &[&'static str],
    ) -> Option<&'static str> {
        let name = self.name(expected)?;
        if let Some(choice) = choices.iter().find(|c| **c == name.text) {
            Some(choice)
        } else {
            self.report(AnalysisError::WrongValue {
                expected: expected.to_owned(),
                found: format!("`{}`", name.text),
                span: name.span,
                // Between `on` and `off`, edit distance guesses the opposite of what `no`,
                // `yes` or `true` meant: name both and suggest neither.
                help: if choices == ["on", "off"] {
                    Some("write `on` or `off`".to_owned())
                } else {
                    suggest::help(&name.text, choices.iter().copied(), "choose one of")
                },
            });
            None
        }
    }

    /// Consumes the word `keyword` if it comes next.
    pub(crate) fn eat(&mut self, keyword: &str) -> bool {
        if matches!(self.peek(), Some(Atom::Name(n)) if n.text == keyword) {
            self.index += 1;
            true
        } else {
            false
        }
    }

    /// Requires the word `keyword` next.
    pub(crate) fn expect(&mut self, keyword: &str) -> Option<()> {
        let expected = format!("`{keyword}`");
        let atom = self.atom(&expected)?;
        if matches!(&atom, Atom::Name(n) if n.text == keyword) {
            Some(())
        } else {
            self.wrong(&expected, &atom);
            None
        }
    }

    /// A string.
    pub(crate) fn string(&mut self, expected: &str) -> Option<(String, Span)> {
        match self.atom(expected)? {
            Atom::Str(s) => Some((s.value, s.span)),
            other => {
                self.wrong(expected, &other);
                None
            }
        }
    }

    /// An inclusive integer range `lo..=hi`, or a single integer `k` (meaning `k..=k`).
    pub(crate) fn int_range(&mut self, what: &str) -> Option<(i64, i64, Span)> {
        let atom = self.atom(what)?;
        int_range(&atom, what, self.sink)
    }

    /// Reports every atom left on the line.
    pub(crate) fn finish(self) {
        let field = self.field.clone();
        let syntax = self.syntax;
        let mut group = self.group;
        let mut index = self.index;
        while let Some(g) = self.groups.get(group) {
            if let Some(atom) = g.get(index) {
                // `20Q`: a word right after a number is a suffix rlp does not know.
                if let (Atom::Name(suffix), Some(Atom::Number(number))) =
                    (atom, index.checked_sub(1).and_then(|i| g.get(i)))
                    && number.span.end == suffix.span.start
                {
                    self.sink.push(
                        AnalysisError::WrongValue {
                            expected: "a number suffix".to_owned(),
                            found: format!("`{}`", suffix.text),
                            span: suffix.span,
                            help: Some(
                                "the suffixes are `k` (thousand), `M` (million), `B` or `G` (billion) and `%`".to_owned(),
                            ),
                        }
                        .into(),
                    );
                    return;
                }
                self.sink.push(
                    AnalysisError::TrailingValue {
                        field,
                        found: atom.describe().to_owned(),
                        span: atom.span(),
                        help: Some(format!("write `{syntax}`")),
                    }
                    .into(),
                );
                return;
            }
            group += 1;
            index = 0;
        }
    }
}

/// Reads an integer range from one atom (shared by block lines and source arguments).
pub(crate) fn int_range(
    atom: &Atom,
    what: &str,
    sink: &mut Vec<Diagnostic>,
) -> Option<(i64, i64, Span)> {
    let whole = |n: &Number| n.suffix.is_none() && n.is_integer_literal();
    match atom {
        Atom::Number(n) if whole(n) => {
            let v = n.value() as i64;
            Some((v, v, n.span))
        }
        Atom::Range(r) if whole(&r.lo) && whole(&r.hi) => {
            let (lo, hi) = (r.lo.value() as i64, r.hi.value() as i64);
            if !r.inclusive {
                sink.push(
                    AnalysisError::ExclusiveRange {
                        suggestion: format!("{}..={}", r.lo.text, r.hi.text),
                        span: r.span,
                    }
                    .into(),
                );
                return None;
            }
            if lo > hi {
                sink.push(
                    AnalysisError::EmptyRange {
                        range: format!("{lo}..={hi}"),
                        suggestion: format!("{hi}..={lo}"),
                        span: r.span,
                    }
                    .into(),
                );
                return None;
            }
            Some((lo, hi, r.span))
        }
        other => {
            sink.push(
                AnalysisError::WrongValue {
                    expected: format!("{what} (a whole number or a range such as `2..=5`)"),
                    found: other.describe().to_owned(),
                    span: other.span(),
                    help: None,
                }
                .into(),
            );
            None
        }
    }
}

/// `[lo, hi]` in words.
fn range_text(lo: f64, hi: f64) -> String {
    if hi >= 1e300 || hi >= i64::MAX as f64 {
        format!("at least {}", format_number(lo))
    } else {
        format!("between {} and {}", format_number(lo), format_number(hi))
    }
}

/// A number printed without float noise: `0.3`, `20000000`, `0.0001`.
pub(crate) fn format_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        let short = format!("{value:.6}");
        let trimmed = short.trim_end_matches('0').trim_end_matches('.');
        if trimmed == "0" || trimmed == "-0" {
            format!("{value:e}")
        } else {
            trimmed.to_owned()
        }
    }
}
