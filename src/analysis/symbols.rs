//! The symbol table: every named definition of the file and of the prelude, by name.

use std::collections::BTreeMap;

use super::suggest;
use crate::diagnostics::{AnalysisError, AnalysisWarning, Diagnostic};
use crate::syntax::Span;
use crate::syntax::ast::{Ast, Block, Item, Name};

/// What a name is defined as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum DefKind {
    Context,
    Phrasing,
    Task,
    Model,
    Mixture,
    Pretrain,
    Midtrain,
    Rl,
    Reward,
    Budget,
}

impl DefKind {
    /// The block kinds, by keyword.
    pub(crate) const BLOCKS: &'static [(&'static str, Option<DefKind>)] = &[
        ("context", Some(DefKind::Context)),
        ("phrasing", Some(DefKind::Phrasing)),
        ("task", Some(DefKind::Task)),
        ("model", Some(DefKind::Model)),
        ("mixture", Some(DefKind::Mixture)),
        ("pretrain", Some(DefKind::Pretrain)),
        ("midtrain", Some(DefKind::Midtrain)),
        ("rl", Some(DefKind::Rl)),
        ("eval", None),
    ];

    /// The word used in messages.
    pub(crate) fn noun(self) -> &'static str {
        match self {
            DefKind::Context => "context",
            DefKind::Phrasing => "phrasing",
            DefKind::Task => "task",
            DefKind::Model => "model",
            DefKind::Mixture => "mixture",
            DefKind::Pretrain => "pretrain stage",
            DefKind::Midtrain => "midtrain stage",
            DefKind::Rl => "rl stage",
            DefKind::Reward => "reward",
            DefKind::Budget => "budget",
        }
    }

    /// Whether this kind is a training stage.
    pub(crate) fn is_stage(self) -> bool {
        matches!(self, DefKind::Pretrain | DefKind::Midtrain | DefKind::Rl)
    }
}

/// Where a definition comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    User,
    Prelude,
}

/// One named definition.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Def<'a> {
    pub(crate) kind: DefKind,
    pub(crate) origin: Origin,
    /// The defining item.
    pub(crate) item: &'a Item,
    /// The name's span (in its own file).
    pub(crate) span: Span,
}

impl<'a> Def<'a> {
    /// The defining block, for block kinds.
    pub(crate) fn block(&self) -> Option<&'a Block> {
        match self.item {
            Item::Block(block) => Some(block),
            _ => None,
        }
    }
}

/// Every definition in scope, by name.
#[derive(Debug, Default)]
pub(crate) struct Symbols<'a> {
    pub(crate) defs: BTreeMap<&'a str, Def<'a>>,
    /// Names the prelude defines but the file did not import (for "add `use prelude`" hints).
    pub(crate) prelude_names: Vec<&'a str>,
}

impl<'a> Symbols<'a> {
    /// Collects the definitions of the prelude (if imported) and the file.
    pub(crate) fn collect(
        user: &'a Ast,
        prelude: &'a Ast,
        imported: bool,
        sink: &mut Vec<Diagnostic>,
    ) -> Self {
        let mut symbols = Symbols::default();
        for item in &prelude.items {
            if let Some((name, kind)) = definition(item) {
                if imported {
                    symbols.defs.insert(
                        &name.text,
                        Def {
                            kind,
                            origin: Origin::Prelude,
                            item,
                            span: name.span,
                        },
                    );
                } else {
                    symbols.prelude_names.push(&name.text);
                }
            }
        }
        for item in &user.items {
            if let Item::Block(block) = item {
                check_block_header(block, sink);
            }
            let Some((name, kind)) = definition(item) else {
                continue;
            };
            let def = Def {
                kind,
                origin: Origin::User,
                item,
                span: name.span,
            };
            match symbols.defs.get(name.text.as_str()) {
                Some(prev) if prev.origin == Origin::Prelude => {
                    sink.push(
                        AnalysisWarning::ShadowsPrelude {
                            kind: kind.noun(),
                            name: name.text.clone(),
                            span: name.span,
                        }
                        .into(),
                    );
                    symbols.defs.insert(&name.text, def);
                }
                Some(prev) => sink.push(
                    AnalysisError::DuplicateName {
                        kind: kind.noun(),
                        name: name.text.clone(),
                        span: name.span,
                        first: prev.span,
                    }
                    .into(),
                ),
                None => {
                    symbols.defs.insert(&name.text, def);
                }
            }
        }
        symbols
    }

    /// Looks `name` up as one of `kinds`, reporting unknown names and wrong kinds.
    pub(crate) fn lookup(
        &self,
        name: &Name,
        kinds: &[DefKind],
        sink: &mut Vec<Diagnostic>,
    ) -> Option<Def<'a>> {
        let expected = kinds[0].noun();
        let expected = if kinds.iter().all(|k| k.is_stage()) {
            "stage"
        } else {
            expected
        };
        match self.defs.get(name.text.as_str()) {
            Some(def) if kinds.contains(&def.kind) => Some(*def),
            Some(def) => {
                sink.push(
                    AnalysisError::WrongKind {
                        name: name.text.clone(),
                        expected,
                        found: def.kind.noun(),
                        span: name.span,
                        help: suggest::help(
                            &name.text,
                            self.names_of(kinds),
                            &format!("the {expected}s are"),
                        ),
                    }
                    .into(),
                );
                None
            }
            None => {
                let help = if self.prelude_names.contains(&name.text.as_str()) {
                    Some(format!(
                        "`{}` is defined in the standard prelude: add `use prelude` at the top of the file",
                        name.text
                    ))
                } else {
                    suggest::help(
                        &name.text,
                        self.names_of(kinds),
                        &format!("the {expected}s are"),
                    )
                    .or_else(|| {
                        Some(format!(
                            "no {expected} is defined; define one with `{}`",
                            definition_example(kinds[0], &name.text)
                        ))
                    })
                };
                sink.push(
                    AnalysisError::UnknownName {
                        kind: expected,
                        name: name.text.clone(),
                        span: name.span,
                        help,
                    }
                    .into(),
                );
                None
            }
        }
    }

    fn names_of(&self, kinds: &[DefKind]) -> Vec<&'a str> {
        self.defs
            .iter()
            .filter(|(_, d)| kinds.contains(&d.kind))
            .map(|(n, _)| *n)
            .collect()
    }

    /// The user-defined definitions of one kind, in file order.
    pub(crate) fn user_defs(&self, kind: DefKind) -> Vec<(&'a str, Def<'a>)> {
        let mut defs: Vec<_> = self
            .defs
            .iter()
            .filter(|(_, d)| d.kind == kind && d.origin == Origin::User)
            .map(|(n, d)| (*n, *d))
            .collect();
        defs.sort_by_key(|(_, d)| d.span.start);
        defs
    }
}

fn definition_example(kind: DefKind, name: &str) -> String {
    match kind {
        DefKind::Reward => format!("reward {name} = answer"),
        DefKind::Budget => format!("budget {name} = 100 rl_steps"),
        other => format!("{} {name} {{ ... }}", keyword(other)),
    }
}

fn keyword(kind: DefKind) -> &'static str {
    match kind {
        DefKind::Reward => "reward",
        DefKind::Budget => "budget",
        other => DefKind::BLOCKS
            .iter()
            .find(|(_, k)| *k == Some(other))
            .map_or("", |(kw, _)| kw),
    }
}

/// The name and kind an item defines, if any.
fn definition(item: &Item) -> Option<(&Name, DefKind)> {
    match item {
        Item::Reward(r) => Some((&r.name, DefKind::Reward)),
        Item::Budget(b) => Some((&b.name, DefKind::Budget)),
        Item::Block(block) => {
            let kind = DefKind::BLOCKS
                .iter()
                .find(|(kw, _)| *kw == block.kind.text)?
                .1?;
            Some((block.name.as_ref()?, kind))
        }
        Item::Use(_) | Item::Seed(_) | Item::Sweep(_) => None,
    }
}

/// Reports unknown block kinds and missing names.
fn check_block_header(block: &Block, sink: &mut Vec<Diagnostic>) {
    let Some((_, kind)) = DefKind::BLOCKS
        .iter()
        .find(|(kw, _)| *kw == block.kind.text)
    else {
        sink.push(
            AnalysisError::UnknownBlockKind {
                kind: block.kind.text.clone(),
                span: block.kind.span,
                help: suggest::help(
                    &block.kind.text,
                    DefKind::BLOCKS.iter().map(|(kw, _)| *kw),
                    "the block kinds are",
                ),
            }
            .into(),
        );
        return;
    };
    if kind.is_some() && block.name.is_none() {
        sink.push(
            AnalysisError::MissingName {
                block: block.kind.text.clone(),
                span: block.kind.span,
            }
            .into(),
        );
    }
}
