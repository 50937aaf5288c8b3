//! Dependency graphs of arithmetic facts: the data behind every problem.
//!
//! Nodes are quantities: *instance* quantities ("adult owl in South Zoo") and entity *totals*
//! ("total number of adult animals in South Zoo", the sum of every instance quantity of that
//! entity). An instance quantity is computed from a random constant, from earlier quantities,
//! or both. op(G) is the sum of in-degrees over the necessary nodes, an edge from the random
//! constant ("RNG") included (reference §A.2).

use serde::Serialize;

/// What a node stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum NodeKind {
    /// `<item> in <entity>`: indices into the problem's chosen entity and item names.
    Instance {
        /// Entity index.
        entity: usize,
        /// Item index.
        item: usize,
    },
    /// `<total> in <entity>`.
    Total {
        /// Entity index.
        entity: usize,
    },
}

/// How the parameters of a node combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Combine {
    /// One parameter, copied.
    Copy,
    /// The sum of two or more parameters.
    Sum,
    /// The first of two parameters minus the second.
    Difference,
}

/// How a node's value is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Rule {
    /// A random constant only.
    Leaf(i64),
    /// Its parameters only.
    Params(Combine),
    /// A random constant plus its parameters.
    Plus(i64, Combine),
    /// A random constant times its parameters.
    Times(i64, Combine),
}

impl Rule {
    /// Whether the rule draws a random constant (an edge from RNG).
    #[must_use]
    pub fn has_constant(self) -> bool {
        !matches!(self, Rule::Params(_))
    }

    /// How the parameters combine (`Copy` for a leaf, which has none).
    #[must_use]
    pub fn combine(self) -> Combine {
        match self {
            Rule::Leaf(_) => Combine::Copy,
            Rule::Params(c) | Rule::Plus(_, c) | Rule::Times(_, c) => c,
        }
    }
}

/// One quantity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// What it is.
    pub kind: NodeKind,
    /// The nodes it is computed from, in order.
    pub params: Vec<usize>,
    /// How.
    pub rule: Rule,
    /// Its value.
    pub value: i64,
}

impl Node {
    /// The node's in-degree, the RNG edge included: its contribution to op(G).
    #[must_use]
    pub fn ops(&self) -> u32 {
        self.params.len() as u32 + u32::from(self.rule.has_constant())
    }
}

/// A problem's graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Graph {
    /// Every node, necessary and distractor.
    pub nodes: Vec<Node>,
    /// The necessary nodes in solution (topological) order; the last is the target.
    pub order: Vec<usize>,
    /// Distractor nodes, in the order they were added.
    pub distractors: Vec<usize>,
    /// Reverse mode: the leaf whose value the problem asks for.
    pub unknown: Option<usize>,
}

impl Graph {
    /// The question's target (the last necessary node).
    #[must_use]
    pub fn target(&self) -> usize {
        self.order[self.order.len() - 1]
    }

    /// op(G): in-degrees summed over the necessary nodes.
    #[must_use]
    pub fn op(&self) -> u32 {
        self.order.iter().map(|&n| self.nodes[n].ops()).sum()
    }

    /// The value `node` gets from its rule and its parameters' values.
    #[must_use]
    pub fn evaluate(&self, node: usize) -> i64 {
        let n = &self.nodes[node];
        let values: Vec<i64> = n.params.iter().map(|&p| self.nodes[p].value).collect();
        apply(n.rule, &values)
    }
}

/// A rule applied to parameter values.
#[must_use]
pub fn apply(rule: Rule, values: &[i64]) -> i64 {
    let combined = |c: Combine| match c {
        Combine::Copy | Combine::Sum => values.iter().sum::<i64>(),
        Combine::Difference => values[0] - values[1..].iter().sum::<i64>(),
    };
    match rule {
        Rule::Leaf(k) => k,
        Rule::Params(c) => combined(c),
        Rule::Plus(k, c) => k + combined(c),
        Rule::Times(k, c) => k * combined(c),
    }
}
