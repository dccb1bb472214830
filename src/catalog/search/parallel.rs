//! Work split across the machine's cores, and what a panicked part means ([`ScanPanicked`]).

/// Candidate count from which a scan is split across the cores.
pub(super) const PARALLEL_FROM: usize = 20_000;

/// How many threads a scan of `n` candidates is split across.
pub(crate) fn threads_for(n: usize) -> usize {
    if n < PARALLEL_FROM { 1 } else { cores() }
}

/// The threads work split across the machine's cores takes (at most 8).
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}

/// `items` split into at most `parts` consecutive runs of about equal total `weight` (no run
/// empty; one run when `parts` is 1).
pub(crate) fn even_runs<T>(items: &[T], parts: usize, weight: impl Fn(&T) -> usize) -> Vec<&[T]> {
    let total: usize = items.iter().map(&weight).sum();
    let mut runs = Vec::new();
    let mut from = 0;
    if parts > 1 && total > 0 {
        let mut acc = 0;
        for (i, item) in items.iter().enumerate() {
            acc += weight(item);
            if acc * parts >= total * (runs.len() + 1) {
                runs.push(&items[from..=i]);
                from = i + 1;
            }
        }
    }
    if from < items.len() {
        runs.push(&items[from..]);
    }
    runs
}

/// `f` of each part, in part order: on a thread of its own per part when there are several.
/// A part that panicked has no answer, so the whole has none: [`ScanPanicked`], never the
/// other parts' answers alone.
pub(crate) fn on_cores<'a, T: Sync, R: Send>(
    parts: Vec<&'a [T]>,
    f: &(dyn Fn(&'a [T]) -> R + Sync),
) -> Result<Vec<R>, ScanPanicked> {
    if parts.len() <= 1 {
        return Ok(parts.into_iter().map(f).collect());
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|part| scope.spawn(move || f(part)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|panic| ScanPanicked::of(&*panic)))
            .collect()
    })
}

/// A thread of a split scan (or index build) panicked, with the panic's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a search thread failed: {0}")]
pub struct ScanPanicked(pub String);

impl ScanPanicked {
    fn of(panic: &(dyn std::any::Any + Send)) -> ScanPanicked {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panicked".into());
        ScanPanicked(message)
    }
}

impl From<ScanPanicked> for crate::catalog::CatalogError {
    fn from(e: ScanPanicked) -> Self {
        crate::catalog::CatalogError::Internal(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A part that panics makes the whole an error, not the other parts' answers.
    #[test]
    fn a_panicked_part_is_an_error_not_a_shorter_answer() {
        let items = [1, 2, 3, 4];
        let parts = even_runs(&items, 2, |_| 1);
        assert_eq!(parts.len(), 2);
        let answer = on_cores(parts, &|part: &[i32]| {
            assert!(!part.contains(&4), "part holding 4");
            part.to_vec()
        });
        let err = answer.expect_err("a panicked part fails the whole");
        assert_eq!(err, ScanPanicked("part holding 4".into()));
        let all = on_cores(even_runs(&items, 2, |_| 1), &|part: &[i32]| part.to_vec());
        assert_eq!(all.unwrap().concat(), items);
    }
}
