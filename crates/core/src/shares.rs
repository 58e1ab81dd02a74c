//! Cutting the event queue into shares, one per applier, while several drain
//! it together (`stripe_sync.apply_workers`). An event's share comes from its
//! object's *share key*, `hashtext(coalesce(object_id, id))`, which the
//! pending index carries as its last column (sql/stripe_sync--0.4.0--0.5.0.sql):
//! share `slot` of `of` is a range of that key, so a claim finds its rows in
//! the index without reading the other shares' rows from the table. Every
//! event of one object has the same key, so it always falls in the same share.

/// The inclusive range of share keys (the whole `int4` range, cut into `of`
/// nearly equal parts) that make share `slot` of `of`. `of` of 0 or 1, or a
/// `slot` out of range, give the whole range: everything is one share.
pub fn share_bounds(slot: i32, of: i32) -> (i32, i32) {
    if of <= 1 || slot < 0 || slot >= of {
        return (i32::MIN, i32::MAX);
    }
    const SPAN: i64 = 1 << 32;
    let start = |k: i64| i32::MIN as i64 + k * SPAN / of as i64;
    let lo = start(slot as i64);
    let hi = start(slot as i64 + 1) - 1;
    (lo as i32, hi as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_applier_claims_every_key() {
        assert_eq!(share_bounds(0, 1), (i32::MIN, i32::MAX));
        assert_eq!(share_bounds(0, 0), (i32::MIN, i32::MAX));
    }

    #[test]
    fn two_appliers_split_the_keys_at_zero() {
        assert_eq!(share_bounds(0, 2), (i32::MIN, -1));
        assert_eq!(share_bounds(1, 2), (0, i32::MAX));
    }

    #[test]
    fn shares_cover_every_key_once_and_are_nearly_equal() {
        for of in 2..=16 {
            let bounds: Vec<(i32, i32)> = (0..of).map(|s| share_bounds(s, of)).collect();
            assert_eq!(
                bounds[0].0,
                i32::MIN,
                "{of} appliers: the first share starts at the lowest key"
            );
            assert_eq!(
                bounds[of as usize - 1].1,
                i32::MAX,
                "{of} appliers: the last share ends at the highest key"
            );
            for w in bounds.windows(2) {
                assert_eq!(
                    w[0].1 as i64 + 1,
                    w[1].0 as i64,
                    "{of} appliers: shares {w:?} touch, no gap, no overlap"
                );
            }
            let sizes: Vec<i64> =
                bounds.iter().map(|(lo, hi)| *hi as i64 - *lo as i64 + 1).collect();
            let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(max - min <= 1, "{of} appliers: share sizes {sizes:?}");
        }
    }

    #[test]
    fn a_slot_outside_the_count_gets_everything() {
        assert_eq!(share_bounds(2, 2), (i32::MIN, i32::MAX));
        assert_eq!(share_bounds(-1, 3), (i32::MIN, i32::MAX));
    }
}
