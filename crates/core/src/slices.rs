//! Cutting a backfill into slices of `created` time that several job workers
//! page through at once. Stripe lists newest first and can only be filtered,
//! not split by count, so the range is cut by time: from the oldest object
//! (found by bisection with one-object probes) to the oldest of the first
//! page, into more slices than workers, so that a worker that finishes early
//! takes the next one.

use crate::pagination::list_query;

/// A half-open range of `created` (Unix seconds): `gte <= created < lt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    pub gte: i64,
    pub lt: i64,
}

/// Slices per worker: enough that uneven slices even out between workers.
pub const SLICES_PER_WORKER: usize = 4;

/// Cuts `[gte, lt)` into at most `n` slices of equal width (a second at
/// least), newest first. Empty when the range is.
pub fn split(gte: i64, lt: i64, n: usize) -> Vec<Slice> {
    if lt <= gte || n == 0 {
        return Vec::new();
    }
    let width = (lt - gte) as u128;
    let n = (n as u128).min(width);
    // Bounds at gte + width * k / n: contiguous, no gaps or overlaps.
    let bound = |k: u128| gte + (width * k / n) as i64;
    (0..n).rev().map(|k| Slice { gte: bound(k), lt: bound(k + 1) }).collect()
}

/// The query of one page of a slice: the list's own parameters, the cursor,
/// and both bounds of the slice.
pub fn slice_query(
    extra: &[(&str, &str)],
    starting_after: Option<&str>,
    slice: Slice,
) -> Vec<(String, String)> {
    let mut q = list_query(extra, starting_after, Some(slice.gte));
    q.push(("created[lt]".into(), slice.lt.to_string()));
    q
}

/// The query that asks for the newest object created before `before`.
pub fn probe_query(extra: &[(&str, &str)], before: i64) -> Vec<(String, String)> {
    let mut q = list_query(extra, None, None);
    q[0].1 = "1".into(); // limit
    q.push(("created[lt]".into(), before.to_string()));
    q
}

/// What a probe found out about the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oldest {
    /// The oldest object's `created`.
    At(i64),
    /// A probe answered an object at or after its bound: the server ignores
    /// `created[lt]`, and the list cannot be sliced.
    FilterIgnored,
}

/// Finds the oldest `created` of a list by bisection, given an object known to
/// exist at `known` and `newest_before(t)`, the `created` of the newest object
/// older than `t` (None when there is none). Nothing is assumed older than
/// `floor`. Takes about log2(known - floor) probes (31 from 1970).
pub fn oldest_created<E>(
    floor: i64,
    known: i64,
    mut newest_before: impl FnMut(i64) -> Result<Option<i64>, E>,
) -> Result<Oldest, E> {
    // Invariant: an object exists at `hi`, none is older than `lo`.
    let (mut lo, mut hi) = (floor, known);
    while lo < hi {
        let mid = lo + (hi - lo + 1) / 2; // lo < mid <= hi
        match newest_before(mid)? {
            Some(c) if c >= mid => return Ok(Oldest::FilterIgnored),
            Some(c) => hi = c.max(lo),
            None => lo = mid,
        }
    }
    Ok(Oldest::At(hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_covers_the_range_newest_first_without_gaps() {
        for (gte, lt, n) in [(0, 10, 3), (100, 101, 8), (5, 1_000_005, 8), (-7, 13, 20), (1, 4, 4)]
        {
            let s = split(gte, lt, n);
            assert!(!s.is_empty() && s.len() <= n, "{gte} {lt} {n}: {s:?}");
            assert_eq!(s.first().unwrap().lt, lt);
            assert_eq!(s.last().unwrap().gte, gte);
            for w in s.windows(2) {
                assert_eq!(w[0].gte, w[1].lt, "{s:?}");
            }
            assert!(s.iter().all(|x| x.gte < x.lt), "{s:?}");
            let widths: Vec<i64> = s.iter().map(|x| x.lt - x.gte).collect();
            let (min, max) = (widths.iter().min().unwrap(), widths.iter().max().unwrap());
            assert!(max - min <= 1, "{widths:?}");
        }
        assert_eq!(split(3, 4, 8), vec![Slice { gte: 3, lt: 4 }]);
        assert!(split(4, 4, 8).is_empty());
        assert!(split(5, 4, 8).is_empty());
        assert!(split(0, 10, 0).is_empty());
        // Wide ranges do not overflow.
        let s = split(0, i64::MAX, 16);
        assert_eq!(s.len(), 16);
        assert_eq!(s[0].lt, i64::MAX);
    }

    #[test]
    fn queries_carry_both_bounds_or_ask_for_one_object() {
        let q = slice_query(&[("status", "all")], Some("in_1"), Slice { gte: 10, lt: 20 });
        let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            q,
            vec![
                ("limit", "100"),
                ("status", "all"),
                ("starting_after", "in_1"),
                ("created[gte]", "10"),
                ("created[lt]", "20")
            ]
        );
        let p = probe_query(&[], 99);
        let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(p, vec![("limit", "1"), ("created[lt]", "99")]);
    }

    /// A list of `created` values, and the probe a server honouring the filter answers.
    fn probe(list: &[i64]) -> impl FnMut(i64) -> Result<Option<i64>, ()> + '_ {
        move |t| Ok(list.iter().copied().filter(|c| *c < t).max())
    }

    #[test]
    fn the_oldest_is_found_in_logarithmic_probes() {
        for list in [
            vec![1_700_000_000, 1_600_000_000, 1_300_000_000],
            vec![1_700_000_000],
            vec![5, 5, 5, 6],
            vec![0, 1_700_000_000],
            vec![1_699_999_999, 1_700_000_000],
        ] {
            let known = *list.iter().max().unwrap();
            let mut calls = 0;
            let mut p = probe(&list);
            let found = oldest_created(0, known, |t| {
                calls += 1;
                p(t)
            });
            assert_eq!(found, Ok(Oldest::At(*list.iter().min().unwrap())), "{list:?}");
            assert!(calls <= 32, "{calls} probes for {list:?}");
        }
        // The floor bounds the search.
        assert_eq!(oldest_created(100, 100, probe(&[100])), Ok(Oldest::At(100)));
    }

    #[test]
    fn a_server_that_ignores_the_filter_is_noticed_and_errors_pass_through() {
        let ignoring = |_t: i64| Ok::<_, ()>(Some(1_700_000_000));
        assert_eq!(oldest_created(0, 1_700_000_000, ignoring), Ok(Oldest::FilterIgnored));
        let failing = |_t: i64| Err::<Option<i64>, _>("503");
        assert_eq!(oldest_created(0, 1_700_000_000, failing), Err("503"));
    }
}
