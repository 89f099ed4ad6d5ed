//! The one way the differential spreads work over the cores: workers take
//! batches in turn (so that they finish together), each with a state of
//! its own (an emulator: runs of one emulator with maps take turns on its
//! maps), and the results come back in item order.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Items a worker takes at a time: small enough that the cores finish
/// together, large enough that taking is rare.
pub(crate) const BATCH: usize = 4096;

/// `work` on every batch of `items`, on every core; each worker first
/// makes its state with `state` (an error there is the result). The
/// results are in batch order.
pub(crate) fn batches<T, S, R, E>(
    items: &[T],
    state: impl Fn() -> Result<S, E> + Sync,
    work: impl Fn(&S, &[T]) -> R + Sync,
) -> Result<Vec<R>, E>
where
    T: Sync,
    R: Send,
    E: Send,
{
    batches_of(BATCH, items, state, work)
}

/// [`batches`] with batches of `size` items: 1 for a few long jobs.
pub(crate) fn batches_of<T, S, R, E>(
    size: usize,
    items: &[T],
    state: impl Fn() -> Result<S, E> + Sync,
    work: impl Fn(&S, &[T]) -> R + Sync,
) -> Result<Vec<R>, E>
where
    T: Sync,
    R: Send,
    E: Send,
{
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let batches: Vec<&[T]> = items.chunks(size).collect();
    let next = AtomicUsize::new(0);
    let per_worker = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers.min(batches.len()))
            .map(|_| {
                scope.spawn(|| {
                    let own = state()?;
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(batch) = batches.get(i) else { break };
                        done.push((i, work(&own, batch)));
                    }
                    Ok(done)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a worker panicked"))
            .collect::<Vec<_>>()
    });
    let mut out = Vec::with_capacity(batches.len());
    for done in per_worker {
        out.extend(done?);
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, r)| r).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_order_and_state_errors_stop_the_run() {
        let items: Vec<u32> = (0..3 * BATCH as u32 + 7).collect();
        let sums = batches(&items, || Ok::<_, ()>(1), |one, b| b.len() * one).unwrap();
        assert_eq!(sums.iter().sum::<usize>(), items.len());
        assert_eq!(sums.last(), Some(&7));
        let firsts = batches(&items, || Ok::<_, ()>(()), |_, b| b[0]).unwrap();
        assert!(firsts.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(
            batches(&items, || Err::<(), _>("no state"), |_, _| 0),
            Err("no state")
        );
    }
}
