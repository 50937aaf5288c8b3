//! Phrasing templates: the slots a phrasing fills, their placeholders, and filling them. The
//! task engine fills them for every problem; analysis checks them; the tokenizer reads their
//! words.

/// A phrasing's slots: name, the placeholders its template may use, and what it renders.
/// Every slot is required, so a phrasing is complete by construction.
pub const SLOTS: &[(&str, &[&str], &str)] = &[
    (
        "instance_name",
        &["item", "entity"],
        "the name of an item quantity",
    ),
    (
        "total_name",
        &["total", "entity"],
        "the name of an entity's total",
    ),
    (
        "instance_ref",
        &["name", "var"],
        "an item quantity inside a sentence",
    ),
    ("total_ref", &["name", "var"], "a total inside a sentence"),
    (
        "fact",
        &["quantity", "expr"],
        "a problem sentence stating a quantity",
    ),
    ("sum", &["terms"], "a sum of two or more terms"),
    ("difference", &["a", "b"], "a difference of two terms"),
    ("plus", &["k", "expr"], "a constant plus an expression"),
    ("times", &["k", "expr"], "a constant times an expression"),
    ("pair_separator", &[], "between the two terms of a sum"),
    ("list_separator", &[], "between terms of a longer sum"),
    ("list_final", &[], "before the last term of a longer sum"),
    ("sentence_end", &[], "after every problem sentence"),
    (
        "unknown",
        &["quantity"],
        "the sentence of a reverse problem's unknown",
    ),
    (
        "known",
        &["quantity", "value"],
        "the extra sentence of a reverse problem stating the total",
    ),
    (
        "question",
        &["context_question", "quantity", "var"],
        "the question",
    ),
    ("define", &["name", "var"], "opens a solution step"),
    (
        "assign",
        &["var", "expr", "values", "value"],
        "a computed assignment",
    ),
    (
        "assign_leaf",
        &["var", "value"],
        "an assignment of a given value",
    ),
    (
        "assign_copy",
        &["var", "expr", "value"],
        "an assignment copying another quantity",
    ),
    ("final_prefix", &[], "before a step's final assignment"),
    ("assign_separator", &[], "between assignments of one step"),
    ("step_end", &[], "after every solution step"),
    ("answer", &["value"], "the closing answer line"),
    ("reverse_intro", &[], "opens a reverse-mode solution"),
    (
        "reverse_unknown",
        &["name", "var"],
        "the step that introduces x",
    ),
    (
        "reverse_solve",
        &["var", "value", "lhs", "moved", "coef", "rhs", "x"],
        "solving the final equation",
    ),
];

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
}
