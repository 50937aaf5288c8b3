//! Deterministic example streams from a stage's data.
//!
//! Example `i` of a stream depends only on the stage seed and `i` (not on earlier examples),
//! so a stream can resume anywhere and the same seed gives the same data on any machine.
//! Each example picks a component with probability equal to its weight, then an op uniformly
//! in the source's range, a context uniformly among the source's, and a mode (the source's,
//! or the task's mix).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use super::{GenerateError, Generator, Problem};
use crate::plan::{DataSpec, Mode, SourceSpec};

/// A seed for example `index` of the stream `seed` (splitmix64 of the pair).
#[must_use]
pub fn example_seed(seed: u64, index: u64) -> u64 {
    let mut z = seed
        ^ index
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(0x6A09_E667_F3BC_C909);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Example `index` of the stream of `data` under `seed`.
pub fn example(
    generator: &Generator<'_>,
    data: &DataSpec,
    seed: u64,
    index: u64,
) -> Result<Problem, GenerateError> {
    let example_seed = example_seed(seed, index);
    let mut rng = ChaCha8Rng::seed_from_u64(example_seed);
    let draw: f64 = rng.random();
    let mut acc = 0.0;
    let mut chosen = &data.components[data.components.len() - 1].source;
    for component in &data.components {
        acc += component.weight;
        if draw < acc {
            chosen = &component.source;
            break;
        }
    }
    from_source(generator, chosen, &mut rng)
}

/// A problem from a source, with op, context and mode drawn from `rng`.
pub fn from_source(
    generator: &Generator<'_>,
    source: &SourceSpec,
    rng: &mut impl Rng,
) -> Result<Problem, GenerateError> {
    let op = rng.random_range(source.op_min..=source.op_max);
    let context = source.contexts[rng.random_range(0..source.contexts.len())];
    let mode = source.mode.unwrap_or_else(|| {
        if rng.random_bool(
            generator.plan.tasks[source.task.0]
                .modes
                .reverse
                .clamp(0.0, 1.0),
        ) {
            Mode::Reverse
        } else {
            Mode::Forward
        }
    });
    generator.generate(source.task, context, mode, op, rng.random())
}

/// A running SHA-256 over the texts of a stream: the dataset hash.
#[derive(Debug, Default, Clone)]
pub struct DatasetHash(Sha256);

impl DatasetHash {
    /// Adds one example.
    pub fn add(&mut self, text: &str) {
        self.0.update((text.len() as u64).to_le_bytes());
        self.0.update(text.as_bytes());
    }

    /// The hash, hex.
    #[must_use]
    pub fn hex(self) -> String {
        use std::fmt::Write as _;
        self.0.finalize().iter().fold(String::new(), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
    }
}
