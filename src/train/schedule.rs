//! The learning-rate schedule: linear warmup from 0 to the peak, then a decay to the floor.

use crate::plan::{Decay, LrSchedule};

/// The learning rate at optimizer step `step` (0-based) of `total`.
#[must_use]
pub fn lr_at(schedule: &LrSchedule, step: u64, total: u64) -> f64 {
    let total = total.max(1);
    let warmup = (schedule.warmup * total as f64).round() as u64;
    if step < warmup {
        return schedule.peak * (step + 1) as f64 / warmup as f64;
    }
    let decay_steps = (total - warmup).max(1);
    let progress = ((step - warmup) as f64 / decay_steps as f64).clamp(0.0, 1.0);
    let span = schedule.peak - schedule.floor;
    match schedule.decay {
        Decay::Constant => schedule.peak,
        Decay::Linear => schedule.peak - span * progress,
        Decay::Cosine => {
            schedule.floor + span * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(decay: Decay) -> LrSchedule {
        LrSchedule {
            peak: 1e-3,
            floor: 1e-4,
            decay,
            warmup: 0.1,
        }
    }

    #[test]
    fn warmup_rises_linearly_to_the_peak() {
        let s = schedule(Decay::Cosine);
        assert!(
            (lr_at(&s, 0, 100) - 1e-4).abs() < 1e-12,
            "step 0 of a 10-step warmup is peak/10"
        );
        assert!((lr_at(&s, 9, 100) - 1e-3).abs() < 1e-12);
    }

    #[test]
    fn decays_end_at_the_floor() {
        for decay in [Decay::Cosine, Decay::Linear] {
            let s = schedule(decay);
            assert!(
                (lr_at(&s, 10, 100) - 1e-3).abs() < 1e-12,
                "{decay:?} starts at the peak"
            );
            assert!(
                (lr_at(&s, 100, 100) - 1e-4).abs() < 1e-12,
                "{decay:?} ends at the floor"
            );
        }
        let s = schedule(Decay::Cosine);
        assert!(
            (lr_at(&s, 55, 100) - 5.5e-4).abs() < 1e-12,
            "cosine is halfway at the middle"
        );
        assert!((lr_at(&schedule(Decay::Constant), 90, 100) - 1e-3).abs() < 1e-12);
    }
}
