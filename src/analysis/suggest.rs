//! Did-you-mean suggestions for unknown names.

/// The candidate closest to `name`, if it is close enough to be a likely typo.
pub(crate) fn closest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(distance, c)| *distance <= (name.len().max(c.len()) / 3).max(1))
        .min_by_key(|(distance, c)| (*distance, *c))
        .map(|(_, c)| c)
}

/// "did you mean `x`?" or, failing that, the list of what is allowed.
pub(crate) fn help<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str> + Clone,
    what: &str,
) -> Option<String> {
    if let Some(best) = closest(name, candidates.clone()) {
        return Some(format!("did you mean `{best}`?"));
    }
    let mut all: Vec<&str> = candidates.into_iter().collect();
    if all.is_empty() {
        return None;
    }
    all.sort_unstable();
    all.dedup();
    let list = all
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ");
    Some(format!("{what}: {list}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typo_finds_the_intended_name() {
        assert_eq!(
            closest("pretrian", ["pretrain", "midtrain", "rl"]),
            Some("pretrain")
        );
        assert_eq!(closest("tokns", ["tokens", "batch"]), Some("tokens"));
    }

    #[test]
    fn unrelated_name_gets_the_list_instead() {
        assert_eq!(closest("zebra", ["pretrain", "rl"]), None);
        assert_eq!(
            help("zebra", ["rl", "pretrain"], "kinds").as_deref(),
            Some("kinds: `pretrain`, `rl`")
        );
    }
}
