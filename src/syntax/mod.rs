//! Stage 1 of the front end: source text → [`ast::Ast`].
//!
//! The grammar lives in `grammar/rlp.pest`; [`parse`] runs it and lowers the parse tree.
//! Nothing here knows what a `pretrain` block means: that is [`crate::analysis`]'s job.

pub mod ast;
mod error;
mod lower;
pub(crate) mod parser;
pub mod span;

pub use error::SyntaxError;
pub use parser::parse;
pub use span::{SourceFile, Span};

use ast::{Ast, Atom, Item, Number};

/// Calls `f` on every number literal in block lines, sweeps, seeds and budgets.
pub(crate) fn visit_numbers(ast: &Ast, f: &mut impl FnMut(&Number)) {
    fn atom(a: &Atom, f: &mut impl FnMut(&Number)) {
        match a {
            Atom::Number(n) => f(n),
            Atom::Range(r) => {
                f(&r.lo);
                f(&r.hi);
            }
            Atom::Source(s) => s
                .args
                .iter()
                .flat_map(|arg| &arg.values)
                .for_each(|v| atom(v, f)),
            Atom::Name(_) | Atom::Str(_) | Atom::Var(_) | Atom::Arrow(_) => {}
        }
    }
    for item in &ast.items {
        match item {
            Item::Seed(s) => atom(&s.value, f),
            Item::Sweep(s) => s.values.iter().for_each(|v| atom(v, f)),
            Item::Budget(b) => {
                atom(&b.amount, f);
                if let Some(rate) = &b.rate {
                    atom(&rate.amount, f);
                }
            }
            Item::Block(b) => b
                .lines
                .iter()
                .flat_map(|l| l.groups.iter().flatten())
                .for_each(|a| atom(a, f)),
            Item::Use(_) | Item::Reward(_) => {}
        }
    }
}
