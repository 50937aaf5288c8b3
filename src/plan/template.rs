//! Phrasing templates: the slots a phrasing fills, their placeholders, and filling them. The
//! task engine fills them for every problem; analysis checks them; the tokenizer reads their
//! words.

/// A phrasing's slots. Every slot is required, so a phrasing is complete by construction;
/// the order of [`Slot::ALL`] is the order of [`crate::plan::PhrasingSpec::templates`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The name of an item quantity.
    InstanceName,
    /// The name of an entity's total.
    TotalName,
    /// An item quantity inside a sentence.
    InstanceRef,
    /// A total inside a sentence.
    TotalRef,
    /// A problem sentence stating a quantity.
    Fact,
    /// A sum of two or more terms.
    Sum,
    /// A difference of two terms.
    Difference,
    /// A constant plus an expression.
    Plus,
    /// A constant times an expression.
    Times,
    /// Between the two terms of a sum.
    PairSeparator,
    /// Between terms of a longer sum.
    ListSeparator,
    /// Before the last term of a longer sum.
    ListFinal,
    /// After every problem sentence.
    SentenceEnd,
    /// The sentence of a reverse problem's unknown.
    Unknown,
    /// The extra sentence of a reverse problem stating the total.
    Known,
    /// The question.
    Question,
    /// Opens a solution step.
    Define,
    /// A computed assignment.
    Assign,
    /// An assignment of a given value.
    AssignLeaf,
    /// An assignment copying another quantity.
    AssignCopy,
    /// Before a step's final assignment.
    FinalPrefix,
    /// Between assignments of one step.
    AssignSeparator,
    /// After every solution step.
    StepEnd,
    /// The closing answer line.
    Answer,
    /// Opens a reverse-mode solution.
    ReverseIntro,
    /// The step that introduces x.
    ReverseUnknown,
    /// Solving the final equation.
    ReverseSolve,
}

impl Slot {
    /// Every slot, in canonical order.
    pub const ALL: [Slot; 27] = [
        Slot::InstanceName,
        Slot::TotalName,
        Slot::InstanceRef,
        Slot::TotalRef,
        Slot::Fact,
        Slot::Sum,
        Slot::Difference,
        Slot::Plus,
        Slot::Times,
        Slot::PairSeparator,
        Slot::ListSeparator,
        Slot::ListFinal,
        Slot::SentenceEnd,
        Slot::Unknown,
        Slot::Known,
        Slot::Question,
        Slot::Define,
        Slot::Assign,
        Slot::AssignLeaf,
        Slot::AssignCopy,
        Slot::FinalPrefix,
        Slot::AssignSeparator,
        Slot::StepEnd,
        Slot::Answer,
        Slot::ReverseIntro,
        Slot::ReverseUnknown,
        Slot::ReverseSolve,
    ];

    /// The slot's name in a `phrasing` block, the placeholders its template may use, and
    /// what it renders.
    #[must_use]
    pub const fn describe(self) -> (&'static str, &'static [&'static str], &'static str) {
        match self {
            Slot::InstanceName => (
                "instance_name",
                &["item", "entity"],
                "the name of an item quantity",
            ),
            Slot::TotalName => (
                "total_name",
                &["total", "entity"],
                "the name of an entity's total",
            ),
            Slot::InstanceRef => (
                "instance_ref",
                &["name", "var"],
                "an item quantity inside a sentence",
            ),
            Slot::TotalRef => ("total_ref", &["name", "var"], "a total inside a sentence"),
            Slot::Fact => (
                "fact",
                &["quantity", "expr"],
                "a problem sentence stating a quantity",
            ),
            Slot::Sum => ("sum", &["terms"], "a sum of two or more terms"),
            Slot::Difference => ("difference", &["a", "b"], "a difference of two terms"),
            Slot::Plus => ("plus", &["k", "expr"], "a constant plus an expression"),
            Slot::Times => ("times", &["k", "expr"], "a constant times an expression"),
            Slot::PairSeparator => ("pair_separator", &[], "between the two terms of a sum"),
            Slot::ListSeparator => ("list_separator", &[], "between terms of a longer sum"),
            Slot::ListFinal => ("list_final", &[], "before the last term of a longer sum"),
            Slot::SentenceEnd => ("sentence_end", &[], "after every problem sentence"),
            Slot::Unknown => (
                "unknown",
                &["quantity"],
                "the sentence of a reverse problem's unknown",
            ),
            Slot::Known => (
                "known",
                &["quantity", "value"],
                "the extra sentence of a reverse problem stating the total",
            ),
            Slot::Question => (
                "question",
                &["context_question", "quantity", "var"],
                "the question",
            ),
            Slot::Define => ("define", &["name", "var"], "opens a solution step"),
            Slot::Assign => (
                "assign",
                &["var", "expr", "values", "value"],
                "a computed assignment",
            ),
            Slot::AssignLeaf => (
                "assign_leaf",
                &["var", "value"],
                "an assignment of a given value",
            ),
            Slot::AssignCopy => (
                "assign_copy",
                &["var", "expr", "value"],
                "an assignment copying another quantity",
            ),
            Slot::FinalPrefix => ("final_prefix", &[], "before a step's final assignment"),
            Slot::AssignSeparator => ("assign_separator", &[], "between assignments of one step"),
            Slot::StepEnd => ("step_end", &[], "after every solution step"),
            Slot::Answer => ("answer", &["value"], "the closing answer line"),
            Slot::ReverseIntro => ("reverse_intro", &[], "opens a reverse-mode solution"),
            Slot::ReverseUnknown => (
                "reverse_unknown",
                &["name", "var"],
                "the step that introduces x",
            ),
            Slot::ReverseSolve => (
                "reverse_solve",
                &["var", "value", "lhs", "moved", "coef", "rhs", "x"],
                "solving the final equation",
            ),
        }
    }

    /// The slot's name in a `phrasing` block.
    #[must_use]
    pub const fn name(self) -> &'static str {
        self.describe().0
    }

    /// Its position in [`Slot::ALL`] and in a phrasing's templates.
    #[must_use]
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// The placeholders of a template, or the first unmatched brace.
pub fn placeholders(text: &str) -> Result<Vec<&str>, char> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' if bytes.get(i + 1) == Some(&b'{') => i += 2,
            b'}' if bytes.get(i + 1) == Some(&b'}') => i += 2,
            b'{' => {
                let close = text[i + 1..].find(['}', '{']).ok_or('{')?;
                if bytes[i + 1 + close] == b'{' {
                    return Err('{');
                }
                out.push(&text[i + 1..i + 1 + close]);
                i += close + 2;
            }
            b'}' => return Err('}'),
            _ => i += 1,
        }
    }
    Ok(out)
}

/// Fills a template's placeholders from `values`; unknown placeholders become empty.
#[must_use]
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let extra: usize = values.iter().map(|(_, v)| v.len()).sum();
    let mut out = String::with_capacity(template.len() + extra);
    fill_into(&mut out, template, values);
    out
}

/// [`fill`], appending to `out`. (Hot paths compile the template once: [`Template`].)
pub fn fill_into(out: &mut String, template: &str, values: &[(&str, &str)]) {
    Template::compile(template).fill_into(out, values);
}

/// A template split once into literal text and placeholders, for fast repeated filling
/// (the generator fills the same few templates dozens of times per problem).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Value(String),
}

impl Template {
    /// Splits a template; `{{` and `}}` become literal braces, as in [`fill`].
    #[must_use]
    pub fn compile(text: &str) -> Self {
        let bytes = text.as_bytes();
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut i = 0;
        let mut start = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'{' | b'}' if bytes.get(i + 1) == Some(&bytes[i]) => {
                    literal.push_str(&text[start..=i]);
                    i += 2;
                    start = i;
                }
                b'{' => match bytes[i + 1..].iter().position(|&b| b == b'}') {
                    Some(len) => {
                        literal.push_str(&text[start..i]);
                        if !literal.is_empty() {
                            pieces.push(Piece::Text(std::mem::take(&mut literal)));
                        }
                        pieces.push(Piece::Value(text[i + 1..i + 1 + len].to_owned()));
                        i += len + 2;
                        start = i;
                    }
                    None => i += 1,
                },
                _ => i += 1,
            }
        }
        literal.push_str(&text[start..]);
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Self { pieces }
    }

    /// Appends the filled template to `out`; unknown placeholders become empty.
    pub fn fill_into(&self, out: &mut String, values: &[(&str, &str)]) {
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Value(key) => {
                    if let Some((_, v)) = values.iter().find(|(k, _)| *k == key) {
                        out.push_str(v);
                    }
                }
            }
        }
    }

    /// The filled template.
    #[must_use]
    pub fn fill(&self, values: &[(&str, &str)]) -> String {
        let mut out = String::with_capacity(64);
        self.fill_into(&mut out, values);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_found_and_braces_escaped() {
        assert_eq!(
            placeholders("Define {name} as {var}; "),
            Ok(vec!["name", "var"])
        );
        assert_eq!(placeholders("{{literal}} {x}"), Ok(vec!["x"]));
        assert_eq!(placeholders("oops {name"), Err('{'));
        assert_eq!(placeholders("oops name}"), Err('}'));
    }

    #[test]
    fn template_edge_cases() {
        let values = [("var", "V"), ("a", "1")];
        let cases = [
            ("{a}{var}", "1V"),
            ("plain", "plain"),
            ("{unclosed", "{unclosed"),
            ("}} {{", "} {"),
            ("{unknown}!", "!"),
            ("", ""),
        ];
        for (template, expected) in cases {
            assert_eq!(
                Template::compile(template).fill(&values),
                expected,
                "{template}"
            );
        }
    }

    #[test]
    fn fill_substitutes_and_unescapes() {
        assert_eq!(
            fill("so {var} = {value}. {{x}}", &[("var", "V"), ("value", "3")]),
            "so V = 3. {x}"
        );
    }

    #[test]
    fn slots_are_listed_in_their_own_order_with_distinct_names() {
        for (i, slot) in Slot::ALL.iter().enumerate() {
            assert_eq!(slot.index(), i);
        }
        let mut names: Vec<&str> = Slot::ALL.iter().map(|s| s.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Slot::ALL.len());
    }
}
