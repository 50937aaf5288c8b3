//! Reverse mode: every quantity as a linear expression `a*x + b` in the unknown x.
//!
//! Multiplication only ever scales by a constant, so every quantity is linear in x. The
//! printing follows sympy's (`x + 3`, `2*x - 1`, `-x + 5`), as the reference's solutions do.

use super::graph::{Combine, Graph, Rule};

/// `coefficient * x + constant`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Linear {
    /// The factor of x.
    pub coefficient: i64,
    /// The constant term.
    pub constant: i64,
}

impl Linear {
    /// A constant.
    #[must_use]
    pub fn constant(value: i64) -> Self {
        Self {
            coefficient: 0,
            constant: value,
        }
    }

    /// Whether x appears.
    #[must_use]
    pub fn has_x(self) -> bool {
        self.coefficient != 0
    }

    fn add(self, other: Self) -> Self {
        Self {
            coefficient: self.coefficient + other.coefficient,
            constant: self.constant + other.constant,
        }
    }

    fn sub(self, other: Self) -> Self {
        Self {
            coefficient: self.coefficient - other.coefficient,
            constant: self.constant - other.constant,
        }
    }

    fn scale(self, k: i64) -> Self {
        Self {
            coefficient: self.coefficient * k,
            constant: self.constant * k,
        }
    }

    /// Printed as sympy prints it.
    #[must_use]
    pub fn render(self) -> String {
        let x = match self.coefficient {
            0 => return self.constant.to_string(),
            1 => "x".to_owned(),
            -1 => "-x".to_owned(),
            a => format!("{a}*x"),
        };
        match self.constant {
            0 => x,
            b if b > 0 => format!("{x} + {b}"),
            b => format!("{x} - {}", -b),
        }
    }

    /// Printed for substitution into a longer expression: in parentheses unless it is a
    /// single term.
    #[must_use]
    pub fn render_operand(self) -> String {
        let text = self.render();
        if text.contains(' ') {
            format!("({text})")
        } else {
            text
        }
    }
}

/// Every node's value as a linear form, with `unknown` as x.
#[must_use]
pub fn forms(graph: &Graph, unknown: usize) -> Vec<Linear> {
    let mut out: Vec<Linear> = graph
        .nodes
        .iter()
        .map(|n| Linear::constant(n.value))
        .collect();
    for &n in &graph.order {
        if n == unknown {
            out[n] = Linear {
                coefficient: 1,
                constant: 0,
            };
            continue;
        }
        let node = &graph.nodes[n];
        let params: Vec<Linear> = node.params.iter().map(|&p| out[p]).collect();
        let combined = |c: Combine| match c {
            Combine::Copy | Combine::Sum => params
                .iter()
                .fold(Linear::constant(0), |acc, p| acc.add(*p)),
            Combine::Difference => params[1..].iter().fold(params[0], |acc, p| acc.sub(*p)),
        };
        out[n] = match node.rule {
            Rule::Leaf(k) => Linear::constant(k),
            Rule::Params(c) => combined(c),
            Rule::Plus(k, c) => Linear::constant(k).add(combined(c)),
            Rule::Times(k, c) => combined(c).scale(k),
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::Linear;

    #[test]
    fn prints_like_sympy() {
        let l = |coefficient, constant| {
            Linear {
                coefficient,
                constant,
            }
            .render()
        };
        assert_eq!(l(1, 3), "x + 3");
        assert_eq!(l(1, -3), "x - 3");
        assert_eq!(l(2, 2), "2*x + 2");
        assert_eq!(l(-1, 5), "-x + 5");
        assert_eq!(l(0, 7), "7");
        assert_eq!(l(3, 0), "3*x");
    }
}
