//! Packing examples into fixed-length training sequences, as the reference does: examples are
//! concatenated (each ending with EOS) and cut into sequences, with no attention masking across
//! example boundaries. Each sequence has `seq_len + 1` tokens (inputs and shifted targets) and a
//! loss mask: every position for the `full` target (the reference), or only the solution and
//! answer tokens — from `<solution>` to EOS — for the `solution` target.

use crate::plan::LossTarget;

/// One packed training sequence: `seq_len + 1` tokens and, per target position, whether it counts in the loss.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    /// Tokens; inputs are `[..seq_len]`, targets `[1..]`.
    pub tokens: Vec<u32>,
    /// For each of the `seq_len` targets, whether it is in the loss.
    pub mask: Vec<bool>,
}

/// Packs examples into sequences.
#[derive(Debug)]
pub struct Packer {
    seq_len: usize,
    target: LossTarget,
    solution_tokens: Vec<u32>,
    tokens: Vec<u32>,
    counts: Vec<bool>,
}

impl Packer {
    /// A packer for sequences of `seq_len` inputs; `solution_tokens` are the ids of `<solution>`
    /// (with and without its leading space: see [`crate::tokenizer::Tokenizer::tag_ids`]).
    #[must_use]
    pub fn new(seq_len: usize, target: LossTarget, solution_tokens: &[u32]) -> Self {
        Self {
            seq_len,
            target,
            solution_tokens: solution_tokens.to_vec(),
            tokens: Vec::new(),
            counts: Vec::new(),
        }
    }

    /// Adds one example (its tokens, EOS included).
    pub fn push(&mut self, example: &[u32]) {
        let mut in_solution = false;
        for &token in example {
            let marker = self.solution_tokens.contains(&token);
            if marker {
                in_solution = true;
            }
            self.tokens.push(token);
            // Whether predicting this token counts: the `<solution>` tag itself is part of the
            // prompt, so counting starts with the token after it.
            let counts = match self.target {
                LossTarget::Full => true,
                LossTarget::Solution => in_solution && !marker,
            };
            self.counts.push(counts);
        }
    }

    /// The buffered tokens and their loss flags (for a checkpoint).
    #[must_use]
    pub fn buffered(&self) -> (&[u32], &[bool]) {
        (&self.tokens, &self.counts)
    }

    /// Replaces the buffer with one saved by [`Packer::buffered`].
    pub fn restore(&mut self, tokens: Vec<u32>, counts: Vec<bool>) {
        self.tokens = tokens;
        self.counts = counts;
    }

    /// The next full sequence, if enough tokens are buffered. Consecutive sequences overlap by one
    /// token so that no target is skipped.
    pub fn next_sequence(&mut self) -> Option<Sequence> {
        if self.tokens.len() < self.seq_len + 1 {
            return None;
        }
        let tokens: Vec<u32> = self.tokens[..=self.seq_len].to_vec();
        let mask = self.counts[1..=self.seq_len].to_vec();
        self.tokens.drain(..self.seq_len);
        self.counts.drain(..self.seq_len);
        Some(Sequence { tokens, mask })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_cover_every_target_once() {
        let mut packer = Packer::new(4, LossTarget::Full, &[99]);
        packer.push(&[1, 2, 3, 2]);
        packer.push(&[1, 5, 6, 2]);
        let a = packer.next_sequence().unwrap();
        let b = packer.next_sequence();
        assert_eq!(a.tokens, [1, 2, 3, 2, 1]);
        assert!(a.mask.iter().all(|m| *m));
        assert!(b.is_none(), "3 tokens left: not a full sequence yet");
        packer.push(&[7, 8, 2]);
        let b = packer.next_sequence().unwrap();
        assert_eq!(
            b.tokens,
            [1, 5, 6, 2, 7],
            "starts with the last input of the previous sequence"
        );
    }

    #[test]
    fn solution_target_masks_the_prompt() {
        // 10 = <solution>: targets count from the token after it to EOS (2).
        let mut packer = Packer::new(6, LossTarget::Solution, &[10, 11]);
        packer.push(&[1, 4, 10, 5, 6, 2]);
        packer.push(&[1]);
        let sequence = packer.next_sequence().unwrap();
        assert_eq!(sequence.tokens, [1, 4, 10, 5, 6, 2, 1]);
        // targets: 4, 10, 5, 6, 2, 1
        assert_eq!(sequence.mask, [false, false, true, true, true, false]);
    }
}
