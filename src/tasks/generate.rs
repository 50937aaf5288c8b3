//! Generating a graph with an exact op(G), directly.
//!
//! The reference samples a graph shape and rejects it unless op(G) lands on the requested
//! value (5–10% of attempts survive, §A.4). Here the shape is grown top-down from the target
//! with an op budget: each node, when defined, spends part of the budget on its in-degree and
//! may create new parent nodes, each of which will cost at least one op later. The budget is
//! never overspent and is always used up exactly, so every shape has op(G) = the request.
//! What can still fail — and is retried — is naming (too few names in the context's pools)
//! and values (an intermediate above `max_value`, or a reverse equation without `x`).
//!
//! The structural variety of the reference is kept: leaves, copies, sums of two or more,
//! differences, constant-plus and constant-times nodes, entity totals, shared parents (a DAG,
//! not a tree), distractor sentences, forward and reverse (solve-for-x) mode.

use rand::Rng;
use rand::seq::{IndexedRandom, SliceRandom};

use super::graph::{Combine, Graph, Node, NodeKind, Rule, apply};
use super::linear::Linear;
use crate::plan::{ContextSpec, Mode, TaskSpec};

/// Names are drawn per problem, at most this many per layer (the reference's cap).
const NAMES_PER_LAYER: usize = 5;

/// A grown shape has at most this many necessary nodes.
const MAX_NODES: usize = 24;

/// A graph with the names it uses.
#[derive(Debug, Clone)]
pub struct Generated<'a> {
    /// The graph.
    pub graph: Graph,
    /// Entity names, indexed by `NodeKind::*::entity`.
    pub entities: Vec<&'a str>,
    /// Item names, indexed by `NodeKind::Instance::item`.
    pub items: Vec<&'a str>,
    /// Reverse mode: each necessary quantity as a linear form in the unknown x.
    pub forms: Option<Vec<Linear>>,
}

/// Why one attempt failed (it is retried).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The shape needs more names than the context's pools hold.
    Names,
    /// A value left [1, `max_value`].
    Values,
    /// Reverse mode found no unknown, or the equation lost `x`.
    Reverse,
    /// The shape grew past the node limit.
    Size,
}

/// One necessary node while the shape grows.
#[derive(Debug, Clone)]
struct ShapeNode {
    total: bool,
    params: Vec<usize>,
    constant: bool,
    /// For an instance node: the total that sums it, if any.
    in_total: Option<usize>,
    defined: bool,
}

/// One attempt at a problem of exactly `op` ops.
pub fn attempt<'a>(
    task: &TaskSpec,
    context: &'a ContextSpec,
    mode: Mode,
    op: u32,
    rng: &mut impl Rng,
) -> Result<Generated<'a>, Rejection> {
    let entity_pool = context.entities.choose(rng).ok_or(Rejection::Names)?;
    let item_pool = context.items.choose(rng).ok_or(Rejection::Names)?;
    let n_entities = entity_pool.names.len().min(NAMES_PER_LAYER);
    let n_items = item_pool.names.len().min(NAMES_PER_LAYER);
    let total_target = match mode {
        Mode::Reverse => rng.random_bool(0.8),
        Mode::Forward => rng.random_bool(0.4),
    } && op >= 1;
    let shape = grow(op, total_target, n_items, rng)?;
    let (kinds, entity_names, item_names) = name(
        &shape,
        entity_pool.names.as_slice(),
        item_pool.names.as_slice(),
        n_entities,
        n_items,
        rng,
    )?;
    let order = topological(&shape);
    let mut nodes: Vec<Node> = shape
        .iter()
        .zip(&kinds)
        .map(|(s, kind)| Node {
            kind: *kind,
            params: s.params.clone(),
            rule: Rule::Leaf(0),
            value: 0,
        })
        .collect();
    assign_values(&mut nodes, &shape, &order, task, rng)?;
    let mut graph = Graph {
        nodes,
        order,
        distractors: Vec::new(),
        unknown: None,
    };
    let mut forms = None;
    if mode == Mode::Reverse {
        let (unknown, linear) = pick_unknown(&graph)?;
        graph.unknown = Some(unknown);
        forms = Some(linear);
    }
    if task.distractors {
        add_distractors(&mut graph, n_entities, n_items, task, rng);
    }
    debug_assert_eq!(graph.op(), op);
    Ok(Generated {
        forms,
        graph,
        entities: entity_names,
        items: item_names,
    })
}

/// Grows a shape top-down from the target, spending exactly `op` ops.
fn grow(
    op: u32,
    total_target: bool,
    n_items: usize,
    rng: &mut impl Rng,
) -> Result<Vec<ShapeNode>, Rejection> {
    let mut nodes = vec![ShapeNode {
        total: total_target,
        params: Vec::new(),
        constant: false,
        in_total: None,
        defined: false,
    }];
    let mut frontier = vec![0usize];
    let mut budget = op as usize;
    while !frontier.is_empty() {
        let pick = rng.random_range(0..frontier.len());
        let x = frontier.swap_remove(pick);
        let others = frontier.len();
        // Budget x may spend on itself and on the parents it creates (each costs >= 1 later).
        let available = budget - others;
        let dependents = dependents_of(&nodes, x);
        let eligible: Vec<usize> = (0..nodes.len())
            .filter(|&y| y != x && !dependents[y])
            .filter(|&y| !nodes[x].total || (!nodes[y].total && nodes[y].in_total.is_none()))
            .collect();
        let choice = choose(&nodes[x], available, others, eligible.len(), n_items, rng)
            .ok_or(Rejection::Size)?;
        let mut reused: Vec<usize> = eligible
            .choose_multiple(rng, choice.reused)
            .copied()
            .collect();
        reused.shuffle(rng);
        for _ in 0..choice.new {
            nodes.push(ShapeNode {
                total: false,
                params: Vec::new(),
                constant: false,
                in_total: None,
                defined: false,
            });
            let id = nodes.len() - 1;
            frontier.push(id);
            reused.push(id);
        }
        reused.shuffle(rng);
        if nodes[x].total {
            for &p in &reused {
                nodes[p].in_total = Some(x);
            }
        }
        nodes[x].params = reused;
        nodes[x].constant = choice.constant;
        nodes[x].defined = true;
        budget -= choice.cost();
        if nodes.len() > MAX_NODES {
            return Err(Rejection::Size);
        }
    }
    debug_assert_eq!(budget, 0);
    Ok(nodes)
}

/// A node's definition: a constant or not, parameters reused from existing nodes, new ones.
#[derive(Debug, Clone, Copy)]
struct Choice {
    constant: bool,
    reused: usize,
    new: usize,
}

impl Choice {
    fn cost(self) -> usize {
        self.reused + self.new + usize::from(self.constant)
    }
}

/// Picks a feasible definition at random: the budget left after it must cover every
/// frontier node (>= 1 each), and must be exactly 0 when nothing is left to define.
fn choose(
    node: &ShapeNode,
    available: usize,
    others: usize,
    eligible: usize,
    n_items: usize,
    rng: &mut impl Rng,
) -> Option<Choice> {
    let mut options: Vec<(Choice, u32)> = Vec::new();
    let max_params = if node.total { n_items } else { 3 };
    let constants: &[bool] = if node.total { &[false] } else { &[false, true] };
    for &constant in constants {
        for params in 0..=max_params {
            if params + usize::from(constant) == 0 || (node.total && params == 0) {
                continue;
            }
            for reused in 0..=params.min(eligible) {
                let choice = Choice {
                    constant,
                    reused,
                    new: params - reused,
                };
                let cost = choice.cost();
                if cost + choice.new > available {
                    continue;
                }
                let left = available - cost;
                // Other frontier nodes already have their 1 op each reserved; only the last
                // definition must spend exactly what is left.
                if others + choice.new == 0 && left != 0 {
                    continue;
                }
                // Prefer moderate fan-in, fresh parents over shared ones, and leaves when
                // the budget is nearly spent.
                let fan_in = match (params, constant) {
                    (0, _) => 3,
                    // A bare copy (`V = W`) carries the least structure: rarer.
                    (1, false) => 2,
                    (1 | 2, _) => 4,
                    _ => 2,
                };
                let sharing = if reused == 0 { 4 } else { 1 };
                options.push((choice, fan_in * sharing));
            }
        }
    }
    let total: u32 = options.iter().map(|(_, w)| w).sum();
    if total == 0 {
        return None;
    }
    let mut ticket = rng.random_range(0..total);
    for (choice, weight) in options {
        if ticket < weight {
            return Some(choice);
        }
        ticket -= weight;
    }
    None
}

/// For every node, whether it depends on `x` (directly or transitively): one pass over the
/// nodes that use each node as a parameter.
fn dependents_of(nodes: &[ShapeNode], x: usize) -> Vec<bool> {
    let mut depends = vec![false; nodes.len()];
    depends[x] = true;
    // Walk users upwards until nothing changes; shapes are small (<= MAX_NODES nodes).
    let mut changed = true;
    while changed {
        changed = false;
        for (n, node) in nodes.iter().enumerate() {
            if !depends[n] && node.params.iter().any(|&p| depends[p]) {
                depends[n] = true;
                changed = true;
            }
        }
    }
    depends[x] = false;
    depends
}

/// Parents before children, the target (node 0) last; ties in a random-free, stable order.
fn topological(shape: &[ShapeNode]) -> Vec<usize> {
    let mut order = Vec::with_capacity(shape.len());
    let mut state = vec![0u8; shape.len()];
    let mut stack = vec![(0usize, 0usize)];
    while let Some((n, i)) = stack.pop() {
        if i == 0 {
            if state[n] != 0 {
                continue;
            }
            state[n] = 1;
        }
        if let Some(&p) = shape[n].params.get(i) {
            stack.push((n, i + 1));
            if state[p] == 0 {
                stack.push((p, 0));
            }
        } else {
            state[n] = 2;
            order.push(n);
        }
    }
    order
}

type Naming<'a> = (Vec<NodeKind>, Vec<&'a str>, Vec<&'a str>);

/// Gives every node an entity (and instance nodes an item): a total's entity is shared by
/// exactly the instance nodes it sums; other instance nodes go to entities without a total.
fn name<'a>(
    shape: &[ShapeNode],
    entity_pool: &'a [String],
    item_pool: &'a [String],
    n_entities: usize,
    n_items: usize,
    rng: &mut impl Rng,
) -> Result<Naming<'a>, Rejection> {
    let mut entities: Vec<&'a str> = entity_pool.iter().map(String::as_str).collect();
    entities.shuffle(rng);
    entities.truncate(n_entities);
    let mut items: Vec<&'a str> = item_pool.iter().map(String::as_str).collect();
    items.shuffle(rng);
    items.truncate(n_items);
    let totals: Vec<usize> = (0..shape.len()).filter(|&n| shape[n].total).collect();
    let free: Vec<usize> = (0..shape.len())
        .filter(|&n| !shape[n].total && shape[n].in_total.is_none())
        .collect();
    if totals.len() > n_entities || (!free.is_empty() && totals.len() >= n_entities) {
        return Err(Rejection::Names);
    }
    let mut kinds = vec![NodeKind::Total { entity: 0 }; shape.len()];
    for (entity, &t) in totals.iter().enumerate() {
        kinds[t] = NodeKind::Total { entity };
        let mut item_order: Vec<usize> = (0..n_items).collect();
        item_order.shuffle(rng);
        for (&p, &item) in shape[t].params.iter().zip(&item_order) {
            kinds[p] = NodeKind::Instance { entity, item };
        }
    }
    let mut slots: Vec<(usize, usize)> = (totals.len()..n_entities)
        .flat_map(|e| (0..n_items).map(move |i| (e, i)))
        .collect();
    if free.len() > slots.len() {
        return Err(Rejection::Names);
    }
    slots.shuffle(rng);
    for (&n, &(entity, item)) in free.iter().zip(&slots) {
        kinds[n] = NodeKind::Instance { entity, item };
    }
    Ok((kinds, entities, items))
}

/// Draws constants and operations in solution order, keeping every value in [1, `max_value`].
fn assign_values(
    nodes: &mut [Node],
    shape: &[ShapeNode],
    order: &[usize],
    task: &TaskSpec,
    rng: &mut impl Rng,
) -> Result<(), Rejection> {
    'attempt: for _ in 0..8 {
        for &n in order {
            let values: Vec<i64> = nodes[n].params.iter().map(|&p| nodes[p].value).collect();
            let Some((rule, value)) =
                pick_rule(&values, shape[n].constant, shape[n].total, task, rng)
            else {
                continue 'attempt;
            };
            if rule_swaps(rule, &values) {
                nodes[n].params.swap(0, 1);
            }
            nodes[n].rule = rule;
            nodes[n].value = value;
        }
        return Ok(());
    }
    Err(Rejection::Values)
}

/// Whether a difference is taken the other way round (the second parameter is larger).
fn rule_swaps(rule: Rule, values: &[i64]) -> bool {
    matches!(rule.combine(), Combine::Difference) && values.len() == 2 && values[0] < values[1]
}

/// A rule for a node with these parameter values, and its value; `None` if every choice
/// leaves [1, `max_value`].
fn pick_rule(
    values: &[i64],
    constant: bool,
    total: bool,
    task: &TaskSpec,
    rng: &mut impl Rng,
) -> Option<(Rule, i64)> {
    let in_bounds = |v: i64| (1..=task.max_value).contains(&v);
    let draw = |range: (i64, i64), rng: &mut dyn rand::RngCore| rng.random_range(range.0..=range.1);
    if values.is_empty() {
        let k = draw(task.constants, rng);
        return Some((Rule::Leaf(k), k));
    }
    let combine = match values.len() {
        1 => Combine::Copy,
        2 if !total && rng.random_bool(0.5) && values[0] != values[1] => Combine::Difference,
        _ => Combine::Sum,
    };
    // A difference is taken larger-minus-smaller, so it stays positive.
    let mut ordered = values.to_vec();
    if combine == Combine::Difference && ordered[0] < ordered[1] {
        ordered.swap(0, 1);
    }
    let base = apply(Rule::Params(combine), &ordered);
    if !in_bounds(base) {
        return None;
    }
    if !constant {
        return Some((Rule::Params(combine), base));
    }
    let plus = Rule::Plus(draw(task.constants, rng), combine);
    let times = Rule::Times(draw(task.multipliers, rng), combine);
    let (first, second) = if rng.random_bool(0.5) {
        (plus, times)
    } else {
        (times, plus)
    };
    [first, second]
        .into_iter()
        .map(|r| (r, apply(r, &ordered)))
        .find(|(_, v)| in_bounds(*v))
}

/// Reverse mode: the unknown is the last leaf (a constant only) before the target.
/// Returns it with every necessary quantity as a linear form in x; fails if the target's form
/// has no x left (the equation would say nothing about x).
fn pick_unknown(graph: &Graph) -> Result<(usize, Vec<Linear>), Rejection> {
    let target = graph.target();
    let unknown = graph
        .order
        .iter()
        .rev()
        .copied()
        .find(|&n| n != target && matches!(graph.nodes[n].rule, Rule::Leaf(_)))
        .ok_or(Rejection::Reverse)?;
    let forms = super::linear::forms(graph, unknown);
    if forms[target].coefficient == 0 {
        return Err(Rejection::Reverse);
    }
    Ok((unknown, forms))
}

/// The most item quantities a structure graph has: its edge count is drawn from `U[w0, 20]`.
pub const MAX_STRUCTURE: usize = 20;

/// The number of item quantities in a problem's structure graph, drawn as the reference draws
/// it (§A.4, steps 1–2): from the op budget `s`, two layer widths `t0, t1` from a softmax
/// centred on `s`'s relative size, and `e = min(U[w0, 20], U[w0, 20], w1²)` edges. Distractors
/// fill the structure up to this size, so problems are as long as the reference's.
fn structure_size(op: u32, rng: &mut impl Rng) -> usize {
    // OPMAX (= strictline) per op, and the budget s = (OPMAX + 1) / 2.
    let opmax = match op {
        0..=3 => 3,
        4 => 4,
        5..=6 => 6,
        7..=9 => 10,
        10..=11 => 15,
        12..=15 => 20,
        16..=18 => 25,
        _ => 30,
    };
    let s = f64::from((opmax + 1) / 2);
    let rel = (s - 1.0) / 19.0;
    let weights: Vec<f64> = [0.1, 0.3, 0.5, 0.7, 0.9]
        .iter()
        .map(|c: &f64| (-(rel - c).powi(2)).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut width = || {
        let mut ticket = rng.random::<f64>() * total;
        for (i, w) in weights.iter().enumerate() {
            if ticket < *w {
                return i + 1;
            }
            ticket -= w;
        }
        weights.len()
    };
    let (t0, t1) = (width(), width());
    let (w0, w1) = (t0.min(t1), t0.max(t1));
    let edges = rng
        .random_range(w0..=MAX_STRUCTURE)
        .min(rng.random_range(w0..=MAX_STRUCTURE));
    edges.min(w1 * w1)
}

/// Adds distractor quantities on entities that have no necessary total: their sentences are
/// in the problem, but the question does not need them.
fn add_distractors(
    graph: &mut Graph,
    n_entities: usize,
    n_items: usize,
    task: &TaskSpec,
    rng: &mut impl Rng,
) {
    let mut used = vec![vec![false; n_items]; n_entities];
    let mut has_total = vec![false; n_entities];
    for node in &graph.nodes {
        match node.kind {
            NodeKind::Instance { entity, item } => used[entity][item] = true,
            NodeKind::Total { entity } => has_total[entity] = true,
        }
    }
    let mut slots: Vec<(usize, usize)> = (0..n_entities)
        .filter(|&e| !has_total[e])
        .flat_map(|e| (0..n_items).map(move |i| (e, i)))
        .filter(|&(e, i)| !used[e][i])
        .collect();
    slots.shuffle(rng);
    let necessary = graph
        .nodes
        .iter()
        .filter(|n| matches!(n.kind, NodeKind::Instance { .. }))
        .count();
    let structure = structure_size(graph.op(), rng);
    let count = structure.saturating_sub(necessary).min(slots.len());
    for &(entity, item) in &slots[..count] {
        // 1-4 parents, geometric with p = 1/2, from the random constant and earlier nodes.
        let mut parents = 1;
        while parents < 4 && rng.random_bool(0.5) {
            parents += 1;
        }
        let constant = parents == 1 && rng.random_bool(0.5) || parents > 1 && rng.random_bool(0.5);
        let n_params = parents - usize::from(constant);
        let params: Vec<usize> = if !graph.distractors.is_empty() && rng.random_bool(0.5) {
            graph
                .distractors
                .choose_multiple(rng, n_params)
                .copied()
                .collect()
        } else {
            let len = graph.nodes.len();
            rand::seq::index::sample(rng, len, n_params.min(len))
                .into_iter()
                .collect()
        };
        let values: Vec<i64> = params.iter().map(|&p| graph.nodes[p].value).collect();
        let Some((rule, value)) =
            pick_rule(&values, constant || params.is_empty(), false, task, rng)
        else {
            continue;
        };
        let mut params = params;
        if rule_swaps(rule, &values) {
            params.swap(0, 1);
        }
        graph.nodes.push(Node {
            kind: NodeKind::Instance { entity, item },
            params,
            rule,
            value,
        });
        graph.distractors.push(graph.nodes.len() - 1);
    }
}
