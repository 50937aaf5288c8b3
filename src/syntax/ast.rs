//! The syntax tree: names as written, every node with its span. Produced by
//! [`crate::syntax::parse`], consumed by [`crate::analysis`]. Spans are skipped when the tree
//! is serialized, so two trees that differ only in layout serialize identically (this is how
//! `rlp fmt` is checked to preserve meaning).

use serde::Serialize;

use super::span::Span;

/// A parsed file.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Ast {
    /// The items in source order.
    pub items: Vec<Item>,
}

/// One top-level item.
#[derive(Debug, Clone, Serialize)]
#[allow(clippy::large_enum_variant)] // items are few; boxing would only add noise
pub enum Item {
    /// `use prelude`.
    Use(Name),
    /// `seed 1234`.
    Seed(SeedItem),
    /// `reward NAME = EXPR`.
    Reward(RewardItem),
    /// `sweep NAME = [values]`.
    Sweep(SweepItem),
    /// `budget NAME = AMOUNT UNIT [where UNIT = AMOUNT UNIT]` (boxed: the largest item, and
    /// a rare one).
    Budget(Box<BudgetItem>),
    /// `kind [name] [from parent] { lines }`.
    Block(Block),
}

/// `seed 1234`.
#[derive(Debug, Clone, Serialize)]
pub struct SeedItem {
    /// The value as written.
    pub value: Atom,
    /// The whole item.
    #[serde(skip)]
    pub span: Span,
}

/// `reward NAME = EXPR`.
#[derive(Debug, Clone, Serialize)]
pub struct RewardItem {
    /// The reward's name.
    pub name: Name,
    /// Its expression.
    pub expr: Expr,
    /// The whole item.
    #[serde(skip)]
    pub span: Span,
}

/// `sweep NAME = [values]`.
#[derive(Debug, Clone, Serialize)]
pub struct SweepItem {
    /// The variable's name (used as `$name`).
    pub name: Name,
    /// Its values, one per cell along this axis.
    pub values: Vec<Atom>,
    /// `zip OTHER`: varies together with another sweep instead of adding an axis.
    pub zip: Option<Name>,
    /// The whole item.
    #[serde(skip)]
    pub span: Span,
}

/// `budget NAME = AMOUNT UNIT [where UNIT = AMOUNT UNIT]`.
#[derive(Debug, Clone, Serialize)]
pub struct BudgetItem {
    /// The budget's name.
    pub name: Name,
    /// The amount, e.g. `100`.
    pub amount: Atom,
    /// The unit, e.g. `rl_steps`.
    pub unit: Name,
    /// An exchange rate, e.g. `where rl_step = 200k tokens`.
    pub rate: Option<BudgetRate>,
    /// The whole item.
    #[serde(skip)]
    pub span: Span,
}

/// `where rl_step = 200k tokens`.
#[derive(Debug, Clone, Serialize)]
pub struct BudgetRate {
    /// The unit being defined (`rl_step`).
    pub unit: Name,
    /// The amount of the other unit it equals.
    pub amount: Atom,
    /// The other unit (`tokens`).
    pub other: Name,
}

/// `kind [name] [from parent] { lines }`.
#[derive(Debug, Clone, Serialize)]
pub struct Block {
    /// The kind keyword as written (`pretrain`, `context`, ...).
    pub kind: Name,
    /// The block's name; optional only for `eval`.
    pub name: Option<Name>,
    /// The parent stage of `midtrain` / `rl`.
    pub parent: Option<Name>,
    /// The checkpoint directory a `midtrain` / `rl` starts from instead (`from "DIR"`).
    pub checkpoint: Option<Str>,
    /// The body.
    pub lines: Vec<Line>,
    /// The whole block.
    #[serde(skip)]
    pub span: Span,
}

/// One line of a block: comma-separated groups of atoms.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    /// The groups; the first atom of the first group is the line's key.
    pub groups: Vec<Vec<Atom>>,
    /// The whole line.
    #[serde(skip)]
    pub span: Span,
}

impl Line {
    /// The line's first atom.
    #[must_use]
    pub fn key(&self) -> &Atom {
        &self.groups[0][0]
    }
}

/// A name with its span.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Name {
    /// The text.
    pub text: String,
    /// Where it is.
    #[serde(skip)]
    pub span: Span,
}

/// A number's magnitude suffix.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub enum Suffix {
    /// `%`: divide by 100.
    Percent,
    /// `k`: thousand.
    Thousand,
    /// `M`: million.
    Million,
    /// `B` or `G`: billion.
    Billion,
}

impl Suffix {
    /// The multiplier the suffix stands for.
    #[must_use]
    pub fn factor(self) -> f64 {
        match self {
            Suffix::Percent => 0.01,
            Suffix::Thousand => 1e3,
            Suffix::Million => 1e6,
            Suffix::Billion => 1e9,
        }
    }
}

/// A number as written.
#[derive(Debug, Clone, Serialize)]
pub struct Number {
    /// The digits as written, without the suffix.
    pub text: String,
    /// The suffix, if any.
    pub suffix: Option<Suffix>,
    /// Where it is.
    #[serde(skip)]
    pub span: Span,
}

impl Number {
    /// The value, suffix applied.
    #[must_use]
    pub fn value(&self) -> f64 {
        let base: f64 = self.text.parse().unwrap_or(f64::NAN);
        self.suffix.map_or(base, |s| base * s.factor())
    }

    /// Whether the digits have no fraction or exponent part.
    #[must_use]
    pub fn is_integer_literal(&self) -> bool {
        !self.text.contains(['.', 'e', 'E'])
    }
}

/// `lo..=hi` or `lo..hi`.
#[derive(Debug, Clone, Serialize)]
pub struct Range {
    /// Lower bound.
    pub lo: Number,
    /// Upper bound.
    pub hi: Number,
    /// `..=` (true) or `..` (false).
    pub inclusive: bool,
    /// Where it is.
    #[serde(skip)]
    pub span: Span,
}

/// `task[op 2..=4, context zoo | teacher]`.
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    /// The task's name.
    pub task: Name,
    /// The restrictions.
    pub args: Vec<SourceArg>,
    /// Where it is.
    #[serde(skip)]
    pub span: Span,
}

/// `op 2..=4` or `context zoo | teacher`.
#[derive(Debug, Clone, Serialize)]
pub struct SourceArg {
    /// `op`, `context` or `mode`.
    pub key: Name,
    /// The alternatives separated by `|`.
    pub values: Vec<Atom>,
    /// Where it is.
    #[serde(skip)]
    pub span: Span,
}

/// One token of a block line.
#[derive(Debug, Clone, Serialize)]
pub enum Atom {
    /// A name.
    Name(Name),
    /// A number.
    Number(Number),
    /// A range (boxed, as is a source: the other atoms are less than half their size, and a
    /// 5 MB file holds hundreds of thousands of atoms).
    Range(Box<Range>),
    /// A string (escapes resolved).
    Str(Str),
    /// `$name`.
    Var(Name),
    /// `->`.
    Arrow(#[serde(skip)] Span),
    /// A source.
    Source(Box<Source>),
}

/// A string literal.
#[derive(Debug, Clone, Serialize)]
pub struct Str {
    /// The value, escapes resolved.
    pub value: String,
    /// Where it is, quotes included.
    #[serde(skip)]
    pub span: Span,
}

impl Atom {
    /// Where the atom is.
    #[must_use]
    pub fn span(&self) -> Span {
        match self {
            Atom::Name(n) | Atom::Var(n) => n.span,
            Atom::Number(n) => n.span,
            Atom::Range(r) => r.span,
            Atom::Str(s) => s.span,
            Atom::Arrow(span) => *span,
            Atom::Source(s) => s.span,
        }
    }

    /// What kind of value this is, for "expected X, found Y" messages.
    #[must_use]
    pub fn describe(&self) -> &'static str {
        match self {
            Atom::Name(_) => "a name",
            Atom::Number(n) if n.suffix == Some(Suffix::Percent) => "a percentage",
            Atom::Number(_) => "a number",
            Atom::Range(_) => "a range",
            Atom::Str(_) => "a string",
            Atom::Var(_) => "a sweep variable",
            Atom::Arrow(_) => "`->`",
            Atom::Source(_) => "a source",
        }
    }
}

/// A reward expression.
#[derive(Debug, Clone, Serialize)]
pub enum Expr {
    /// A number.
    Number {
        /// The value.
        value: f64,
        /// Where it is.
        #[serde(skip)]
        span: Span,
    },
    /// A primitive (`answer`, `process`, ...).
    Name(Name),
    /// `$var`.
    Var(Name),
    /// `-e`.
    Neg {
        /// The operand.
        operand: Box<Expr>,
        /// Where it is.
        #[serde(skip)]
        span: Span,
    },
    /// `a op b`.
    Binary {
        /// The operator.
        op: BinaryOp,
        /// Left operand.
        lhs: Box<Expr>,
        /// Right operand.
        rhs: Box<Expr>,
        /// Where it is.
        #[serde(skip)]
        span: Span,
    },
    /// `f(a, b, ...)`.
    Call {
        /// The function.
        function: Name,
        /// The arguments.
        args: Vec<Expr>,
        /// Where it is.
        #[serde(skip)]
        span: Span,
    },
    /// `if c { a } else { b }`.
    If {
        /// The condition.
        condition: Box<Expr>,
        /// Value when the condition is non-zero.
        then: Box<Expr>,
        /// Value otherwise.
        otherwise: Box<Expr>,
        /// Where it is.
        #[serde(skip)]
        span: Span,
    },
}

impl Expr {
    /// Where the expression is.
    #[must_use]
    pub fn span(&self) -> Span {
        match self {
            Expr::Name(n) | Expr::Var(n) => n.span,
            Expr::Number { span, .. }
            | Expr::Neg { span, .. }
            | Expr::Binary { span, .. }
            | Expr::Call { span, .. }
            | Expr::If { span, .. } => *span,
        }
    }
}

/// A binary operator in a reward expression (the plan's enum: the operator set is the same).
pub use crate::plan::RewardOp as BinaryOp;
