//! The tokenizer: a closed, word-level vocabulary derived from a plan's task grammar.
//!
//! A text is cut into *pieces*: the tags (`<question>`, ...), runs of letters and digits (with
//! `_` and `'`), and single other characters. A piece that follows a space carries it, as GPT's
//! byte-level tokens do (`" number"`), so decoding puts every space back: encoding is lossless
//! for text whose spaces are single, as every generated text's are. The vocabulary is every
//! piece the plan's contexts and phrasings can produce (each with and without its space), the
//! numbers up to the largest `max_value`, the variable letters, arithmetic, the tags, and the
//! special tokens — built in a fixed order, so the same plan always gives the same ids.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::plan::Plan;
use crate::plan::template::Template;

/// Padding.
pub const PAD: u32 = 0;
/// Beginning of sequence.
pub const BOS: u32 = 1;
/// End of sequence.
pub const EOS: u32 = 2;
/// A piece outside the vocabulary (never produced by encoding generated text).
pub const UNK: u32 = 3;

/// The special tokens, by id.
const SPECIALS: [&str; 4] = ["[PAD]", "[BOS]", "[EOS]", "[UNK]"];

/// The tags of the reference layout; each is one token.
pub const TAGS: [&str; 6] = [
    "<question>",
    "</question>",
    "<solution>",
    "</solution>",
    "<answer>",
    "</answer>",
];

/// Characters of arithmetic and punctuation that solutions and model output use.
const SYMBOLS: &str = "+-*/=().,;:?!'\"";

/// A closed vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokenizer {
    /// Version of the file format.
    pub version: u32,
    /// The token strings, by id.
    pub tokens: Vec<String>,
    #[serde(skip)]
    ids: BTreeMap<String, u32>,
}

/// Why a text cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{piece}` at byte {offset} is not in the vocabulary")]
pub struct EncodeError {
    /// The piece.
    pub piece: String,
    /// Where it starts.
    pub offset: usize,
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '\''
}

/// Tokens in a text under this tokenizer, without building them: each run of letters or
/// digits is one token and each other non-space character is one (the rule [`pieces`] cuts
/// by; a test checks the two agree on generated text).
#[must_use]
pub fn count_tokens(text: &str) -> u64 {
    let mut count = 0;
    let mut in_word = false;
    for c in text.chars() {
        if c.is_alphanumeric() || c == '_' || c == '\'' {
            if !in_word {
                count += 1;
                in_word = true;
            }
        } else {
            in_word = false;
            if !c.is_whitespace() {
                count += 1;
            }
        }
    }
    count
}

/// The pieces of a text (see the module docs), each with the byte offset it starts at.
fn pieces(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    while start < text.len() {
        // A piece may start with one space.
        let body = if bytes[start] == b' ' && start + 1 < text.len() && bytes[start + 1] != b' ' {
            start + 1
        } else {
            start
        };
        let rest = &text[body..];
        let len = if let Some(tag) = TAGS.iter().find(|t| rest.starts_with(**t)) {
            tag.len()
        } else {
            let first = rest.chars().next().map_or(0, char::len_utf8);
            if rest.chars().next().is_some_and(is_word) {
                rest.char_indices()
                    .find(|(_, c)| !is_word(*c))
                    .map_or(rest.len(), |(i, _)| i)
            } else {
                first
            }
        };
        let end = body + len.max(1).min(text.len() - body);
        out.push((start, &text[start..end]));
        start = end;
    }
    out
}

impl Tokenizer {
    /// The vocabulary of a plan: every piece its contexts and phrasings can produce.
    #[must_use]
    pub fn for_plan(plan: &Plan) -> Self {
        let mut words: BTreeSet<String> = BTreeSet::new();
        let add_text = |text: &str, words: &mut BTreeSet<String>| {
            for (_, piece) in pieces(text) {
                let bare = piece.trim_start_matches(' ');
                words.insert(bare.to_owned());
            }
        };
        for context in &plan.contexts {
            for text in [
                &context.entity_category,
                &context.total,
                &context.ask_total,
                &context.ask_item,
            ] {
                add_text(&literal_text(text), &mut words);
            }
            for pool in context.entities.iter().chain(&context.items) {
                for name in &pool.names {
                    add_text(name, &mut words);
                }
            }
        }
        for phrasing in &plan.phrasings {
            for (_, template) in &phrasing.templates {
                add_text(&literal_text(template), &mut words);
            }
        }
        let max_value = plan.tasks.iter().map(|t| t.max_value).max().unwrap_or(1000);
        for n in 0..=max_value.max(0) {
            words.insert(n.to_string());
        }
        for c in ('A'..='Z').chain('a'..='z').chain(SYMBOLS.chars()) {
            words.insert(c.to_string());
        }
        let mut tokens: Vec<String> = SPECIALS
            .iter()
            .chain(TAGS.iter())
            .map(|s| (*s).to_owned())
            .collect();
        for tag in TAGS {
            tokens.push(format!(" {tag}"));
        }
        // A space before another space (never in generated text, but lossless if it occurs).
        tokens.push(" ".to_owned());
        // Sentences start with a capital: every word may appear capitalised.
        let capitalised: Vec<String> = words
            .iter()
            .filter_map(|w| {
                let mut chars = w.chars();
                let first = chars.next()?;
                first
                    .is_lowercase()
                    .then(|| first.to_uppercase().chain(chars).collect())
            })
            .collect();
        words.extend(capitalised);
        for word in &words {
            if !word.is_empty() && !TAGS.contains(&word.as_str()) {
                tokens.push(word.clone());
                tokens.push(format!(" {word}"));
            }
        }
        Self::from_tokens(tokens)
    }

    /// A tokenizer with these tokens (ids are positions), as saved in a run directory.
    #[must_use]
    pub fn from_tokens(tokens: Vec<String>) -> Self {
        let ids = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        Self {
            version: 1,
            tokens,
            ids,
        }
    }

    /// The ids of a tag such as `<solution>`: on its own and with its leading space (the form
    /// it has after other text). Empty if the tag is not in the vocabulary.
    #[must_use]
    pub fn tag_ids(&self, tag: &str) -> Vec<u32> {
        [tag.to_owned(), format!(" {tag}")]
            .iter()
            .filter_map(|t| self.ids.get(t).copied())
            .collect()
    }

    /// Reads a tokenizer saved as JSON.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        let saved: Self = serde_json::from_str(json)?;
        Ok(Self::from_tokens(saved.tokens))
    }

    /// The vocabulary size.
    #[must_use]
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the vocabulary is empty (it never is: specials are always there).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Encodes a text; fails on a piece outside the vocabulary.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, EncodeError> {
        pieces(text)
            .into_iter()
            .map(|(offset, piece)| {
                self.ids.get(piece).copied().ok_or_else(|| EncodeError {
                    piece: piece.to_owned(),
                    offset,
                })
            })
            .collect()
    }

    /// A prompt as the model sees it: [`BOS`], then the text (pieces outside the vocabulary as
    /// [`UNK`]). Training examples start the same way.
    #[must_use]
    pub fn prompt_ids(&self, text: &str) -> Vec<u32> {
        let mut ids = vec![BOS];
        ids.extend(self.encode_lossy(text));
        ids
    }

    /// Where a completion ends: [`EOS`], or the tag that closes the answer.
    #[must_use]
    pub fn completion_stops(&self) -> Vec<u32> {
        std::iter::once(EOS)
            .chain(self.tag_ids("</answer>"))
            .collect()
    }

    /// Encodes a text, mapping pieces outside the vocabulary to [`UNK`].
    #[must_use]
    pub fn encode_lossy(&self, text: &str) -> Vec<u32> {
        pieces(text)
            .into_iter()
            .map(|(_, piece)| self.ids.get(piece).copied().unwrap_or(UNK))
            .collect()
    }

    /// Decodes ids; special tokens and ids outside the vocabulary decode to nothing.
    #[must_use]
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut out = String::new();
        for &id in ids {
            if (id as usize) < SPECIALS.len() {
                continue;
            }
            if let Some(token) = self.tokens.get(id as usize) {
                out.push_str(token);
            }
        }
        out
    }
}

/// A template's literal text: placeholders dropped (`{{`/`}}` kept as braces).
fn literal_text(template: &str) -> String {
    Template::compile(template).fill(&[])
}

#[cfg(test)]
mod tests {
    use super::{count_tokens, pieces};

    #[test]
    fn pieces_carry_their_space() {
        let cut: Vec<&str> = pieces("<question> The number of adult owl equals 3. </question>")
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        assert_eq!(
            cut,
            [
                "<question>",
                " The",
                " number",
                " of",
                " adult",
                " owl",
                " equals",
                " 3",
                ".",
                " </question>"
            ]
        );
        let cut: Vec<&str> = pieces("so V = 2*x + 3; don't  stop")
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        assert_eq!(
            cut,
            [
                "so", " V", " =", " 2", "*", "x", " +", " 3", ";", " don't", " ", " stop"
            ]
        );
    }

    #[test]
    fn tokens_are_words_and_punctuation() {
        assert_eq!(
            count_tokens("Define adult owl in South Zoo as V; so V = 3. "),
            14
        );
        assert_eq!(count_tokens("don't"), 1);
    }
}
