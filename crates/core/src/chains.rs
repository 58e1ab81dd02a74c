//! Keeping the request budget busy during a backfill. Stripe's lists are
//! cursor chains (each page needs the last id of the one before), so the only
//! way to have several pages in flight is several chains: slices of `created`
//! time, each listed newest first on its own. Nothing tells how many objects
//! a time range holds, so no range is cut in advance (that took a probe of
//! about 30 sequential requests): a chain is cut in two only when a request
//! slot is free and no chain waits, and the chain cut is the one that seems
//! to hold the most pages, by the density its pages showed (the time span
//! of a full page; a chain cut off inherits its parent's). The cursor's
//! chain keeps [`CHUNK_PAGES`] pages' worth of time below its cursor (half
//! of what it seems to hold, when that is less) and the older rest becomes a
//! new chain: from the first page, the past is cut into chunks of a few
//! pages each, newest first, one per free slot. Each chain ends with a
//! partial page; chunks cut beyond the oldest object cost one empty request
//! each, once.

use crate::slices::Slice;

/// A chain of pages over `[gte, lt)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub gte: i64,
    pub lt: i64,
    /// Last id of the last page applied (the cursor).
    pub after: Option<String>,
    /// `created` of the oldest object listed so far: objects older than it
    /// (and as old) may be left.
    pub reached: Option<i64>,
    /// Time span (seconds) of the last full page: the chain's density.
    pub span: Option<i64>,
    pub in_flight: bool,
    pub done: bool,
    /// Its last page was full and said more follow.
    pub more: bool,
}

impl Chain {
    pub fn new(slice: Slice, after: Option<String>) -> Chain {
        Chain {
            gte: slice.gte,
            lt: slice.lt,
            after,
            reached: None,
            span: None,
            in_flight: false,
            done: false,
            more: false,
        }
    }

    pub fn slice(&self) -> Slice {
        Slice { gte: self.gte, lt: self.lt }
    }

    /// Where the time left ends: the oldest `created` listed, or the end
    /// of the range while nothing is.
    pub fn top(&self) -> i64 {
        self.reached.unwrap_or(self.lt)
    }

    /// Pages left by the density its pages (or its parent's) showed, 0 while
    /// unknown; nothing is counted older than `floor`.
    pub fn pages_left(&self, floor: i64) -> f64 {
        let bottom = self.gte.max(floor);
        match self.span {
            Some(s) if self.top() > bottom => (self.top() - bottom) as f64 / s.max(1) as f64,
            _ => 0.0,
        }
    }
}

/// Pages a chain that answered must be expected to hold for a cut: each
/// part ends with a partial page of its own, so a cut that leaves parts of a
/// page or two spends a request in three for them.
pub const MIN_PAGES_TO_CUT: f64 = 6.0;

/// Full pages a listing answers before any cut: shorter lists are paged one
/// request at a time, with no request spent on an empty range.
pub const FULL_PAGES_BEFORE_CUTS: usize = 2;

/// Pages' worth of time the cursor's chain keeps when cut: more means fewer
/// chains (fewer partial last pages), fewer means a shorter tail.
pub const CHUNK_PAGES: f64 = 16.0;

/// What to do next with a free request slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Request the next page of chain `i`.
    Page(usize),
    /// Chain `from` was cut: its older part is the new chain `new`, to request
    /// (and to store) before anything else.
    Cut { from: usize, new: usize },
    /// Nothing to request: wait for an answer (or all are done).
    Wait,
}

/// The chains of one run and the decisions over them.
#[derive(Debug, Default)]
pub struct Plan {
    pub chains: Vec<Chain>,
    /// Full pages answered so far (each said more follow).
    pub answered: usize,
    /// Where objects are expected to begin (the account's creation): the
    /// part of a range older than it is not counted when cutting, so no cut
    /// reaches into it and one request lists it whole.
    pub floor: i64,
}

impl Plan {
    pub fn new(chains: Vec<Chain>) -> Plan {
        Plan { chains, answered: 0, floor: i64::MIN }
    }

    /// Chains there may be by now: one until [`FULL_PAGES_BEFORE_CUTS`]
    /// full pages were answered (a list of up to that many pages is listed
    /// as it would be alone, request for request), then two per full page
    /// answered: a long list reaches its pace in a few round trips, and
    /// pays a few requests for the part beyond its oldest object.
    pub fn chains_allowed(&self) -> usize {
        if self.answered < FULL_PAGES_BEFORE_CUTS { 1 } else { 2 * self.answered }
    }
}

impl Plan {
    pub fn in_flight(&self) -> usize {
        self.chains.iter().filter(|c| c.in_flight).count()
    }

    pub fn all_done(&self) -> bool {
        self.chains.iter().all(|c| c.done)
    }

    /// The next use of a free slot, with `target` requests to keep in
    /// flight: a cut of a chain that has just answered, while there are
    /// fewer chains than allowed and needed (the one that seems to hold the
    /// most pages); else the waiting chain with the newest range. Only a
    /// chain not in flight is cut, so no two requests ever cover the same
    /// range.
    pub fn next(&mut self, target: usize) -> Next {
        let live = self.chains.iter().filter(|c| !c.done).count();
        if live < self.chains_allowed().min(target)
            && let Some(from) = self.best_cut()
        {
            return self.cut(from);
        }
        match (0..self.chains.len())
            .filter(|&i| !self.chains[i].done && !self.chains[i].in_flight)
            .max_by_key(|&i| self.chains[i].lt)
        {
            Some(i) => Next::Page(i),
            None => Next::Wait,
        }
    }

    fn best_cut(&self) -> Option<usize> {
        (0..self.chains.len())
            .filter(|&i| {
                // A chain whose last page was full, or a part cut off that has not been
                // asked for yet (by its parent's density); how many there may be bounds
                // how far into an empty past the cuts can reach.
                // A part not asked for yet is only cut into whole chunks: halving is for
                // chains whose pages showed what they hold.
                let c = &self.chains[i];
                let fresh = c.reached.is_none() && c.after.is_none() && c.span.is_some();
                let left = c.pages_left(self.floor);
                !c.done
                    && !c.in_flight
                    && ((c.more && left >= MIN_PAGES_TO_CUT)
                        || (fresh && left >= CHUNK_PAGES + MIN_PAGES_TO_CUT))
                    && c.top() - c.gte.max(self.floor) >= 2
            })
            .max_by(|&a, &b| {
                let left = |i: usize| self.chains[i].pages_left(self.floor);
                left(a).total_cmp(&left(b))
            })
    }

    fn cut(&mut self, from: usize) -> Next {
        let floor = self.floor;
        let c = &mut self.chains[from];
        let keep = if c.more { CHUNK_PAGES.min(c.pages_left(floor) / 2.0) } else { CHUNK_PAGES };
        let span = c.span.unwrap_or(1).max(1) as f64;
        let top = c.top();
        let cut = ((top as f64 - keep * span) as i64).clamp(c.gte + 1, top - 1);
        let mut older = Chain::new(Slice { gte: c.gte, lt: cut }, None);
        older.span = c.span;
        c.gte = cut;
        self.chains.push(older);
        Next::Cut { from, new: self.chains.len() - 1 }
    }

    /// Records chain `i`'s page: its last id, its oldest and newest
    /// `created`, how many objects, whether more follow.
    pub fn page_done(&mut self, i: usize, page: PageSeen) {
        if page.full && page.has_more {
            self.answered += 1;
        }
        let c = &mut self.chains[i];
        c.more = page.full && page.has_more;
        c.in_flight = false;
        if page.last_id.is_some() {
            c.after = page.last_id;
        }
        if let (Some(old), Some(new)) = (page.oldest, page.newest) {
            c.reached = Some(c.reached.map_or(old, |r| r.min(old)));
            if page.full {
                c.span = Some(new - old);
            } else if c.span.is_none() {
                c.span = Some((new - old).max(1));
            }
        }
        c.done = !page.has_more || c.after.is_none();
    }
}

/// What a page told about its chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageSeen {
    pub last_id: Option<String>,
    pub oldest: Option<i64>,
    pub newest: Option<i64>,
    /// A full page (as many objects as asked for).
    pub full: bool,
    pub has_more: bool,
}

/// A run's progress as a NOTICE says it: objects so far, their rate, and,
/// with an estimate of what is left, the time left at that rate. None before
/// anything was listed.
pub fn progress(objects: i64, seconds: f64, left: Option<i64>) -> Option<String> {
    if objects <= 0 || seconds <= 0.0 {
        return None;
    }
    let rate = objects as f64 / seconds;
    let mut line = format!("{objects} objects in {seconds:.0} s ({rate:.0}/s)");
    if let Some(left) = left.filter(|l| *l >= 0) {
        line.push_str(&format!("; about {left} left, {:.0} s at this pace", left as f64 / rate));
    }
    Some(line)
}

impl Plan {
    /// Objects still to list by the chains' densities (a page is 100).
    pub fn objects_left(&self) -> i64 {
        let pages: f64 = self
            .chains
            .iter()
            .filter(|c| !c.done)
            .map(|c| if c.span.is_some() { c.pages_left(self.floor).max(0.5) } else { 0.5 })
            .sum();
        (pages * 100.0) as i64
    }
}

/// Requests to keep in flight (chains, one request each) so that the
/// budget (`rate` requests/s) stays busy when an answer takes `latency_s`
/// seconds: the rate times the latency and a quarter, and one more, within
/// 2..=64. More would wait for the budget all the same, and every chain ends
/// with a partial page.
pub fn in_flight_for(rate: f64, latency_s: f64) -> usize {
    let n = (rate * latency_s * 1.25).ceil() + 1.0;
    if n.is_finite() { (n as usize).clamp(2, 64) } else { 64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(last: &str, oldest: i64, newest: i64, more: bool) -> PageSeen {
        PageSeen {
            last_id: Some(last.into()),
            oldest: Some(oldest),
            newest: Some(newest),
            full: more,
            has_more: more,
        }
    }

    /// Cuts made now (with up to `target` in flight), as (kept, cut off).
    fn cuts(p: &mut Plan, target: usize) -> Vec<(Slice, Slice)> {
        let mut out = Vec::new();
        while let Next::Cut { from, new } = p.next(target) {
            out.push((p.chains[from].slice(), p.chains[new].slice()));
        }
        out
    }

    #[test]
    fn a_fresh_chain_is_not_cut_before_its_first_page() {
        let mut p = Plan::new(vec![Chain::new(Slice { gte: 0, lt: 1000 }, None)]);
        p.answered = 10;
        assert_eq!(p.next(64), Next::Page(0));
        p.chains[0].in_flight = true;
        assert_eq!(p.next(64), Next::Wait);
    }

    #[test]
    fn the_past_is_cut_into_chunks_newest_first() {
        let mut p = Plan::new(vec![Chain::new(Slice { gte: 0, lt: 1_000_001 }, None)]);
        p.answered = 2; // with this page three: six chains allowed (the_number_of_chains_ramps_up)
        // 100 objects over the last 100 seconds: about 10,000 pages left by density.
        p.page_done(0, seen("o100", 999_900, 1_000_000, true));
        // The cursor's chain keeps 16 pages' worth (1,600 s) below its cursor; the rest of the
        // past, by the same density, is cut in its turn: chunks of 16 pages, newest first.
        assert_eq!(
            cuts(&mut p, 64),
            vec![
                (Slice { gte: 998_300, lt: 1_000_001 }, Slice { gte: 0, lt: 998_300 }),
                (Slice { gte: 996_700, lt: 998_300 }, Slice { gte: 0, lt: 996_700 }),
                (Slice { gte: 995_100, lt: 996_700 }, Slice { gte: 0, lt: 995_100 }),
                (Slice { gte: 993_500, lt: 995_100 }, Slice { gte: 0, lt: 993_500 }),
                (Slice { gte: 991_900, lt: 993_500 }, Slice { gte: 0, lt: 991_900 }),
            ]
        );
        assert_eq!(p.chains[0].after.as_deref(), Some("o100"));
        // Then every chain is asked for, the newest first.
        assert_eq!(p.next(64), Next::Page(0));
        // Contiguous: every second below the cursor is in exactly one chain.
        let mut all: Vec<Slice> = p.chains.iter().map(Chain::slice).collect();
        all.sort_by_key(|s| s.gte);
        assert!(all.windows(2).all(|w| w[0].lt == w[1].gte));
        assert_eq!((all[0].gte, all.last().unwrap().lt), (0, 1_000_001));
    }

    #[test]
    fn a_chain_that_showed_less_than_a_chunk_is_halved() {
        let mut p = Plan::new(vec![Chain::new(Slice { gte: 999_000, lt: 1_000_001 }, None)]);
        p.answered = 10;
        // 100 objects over 100 s, 900 s left: nine pages; the cursor's chain keeps 4.5.
        p.page_done(0, seen("a", 999_900, 1_000_000, true));
        assert_eq!(
            cuts(&mut p, 2),
            vec![(Slice { gte: 999_450, lt: 1_000_001 }, Slice { gte: 999_000, lt: 999_450 })]
        );
    }

    #[test]
    fn nothing_older_than_the_floor_is_cut() {
        let mut p = Plan::new(vec![Chain::new(Slice { gte: 0, lt: 1_000_001 }, None)]);
        p.answered = 10;
        p.floor = 996_000;
        p.page_done(0, seen("o100", 999_900, 1_000_000, true));
        // 39 pages above the floor: chunks of 16 off the cursor's chain and off the rest; the 7
        // pages left (with all before the floor) are too few for another whole chunk: one
        // chain, asked for as it is. The cursor's chain, which answered, is halved as slots
        // are free.
        let got = cuts(&mut p, 64);
        assert_eq!(
            got[..2],
            [
                (Slice { gte: 998_300, lt: 1_000_001 }, Slice { gte: 0, lt: 998_300 }),
                (Slice { gte: 996_700, lt: 998_300 }, Slice { gte: 0, lt: 996_700 }),
            ]
        );
        let oldest = p.chains.iter().min_by_key(|c| c.gte).unwrap();
        assert_eq!((oldest.gte, oldest.lt), (0, 996_700), "{got:?}");
        assert!(
            got[2..].iter().all(|(kept, cut)| kept.gte >= 998_300 && cut.gte >= 998_300),
            "{got:?}"
        );
    }

    #[test]
    fn no_more_chains_than_the_target() {
        let mut p = Plan::new(vec![Chain::new(Slice { gte: 0, lt: 1_000_001 }, None)]);
        p.answered = 10;
        p.page_done(0, seen("o100", 999_900, 1_000_000, true));
        assert_eq!(cuts(&mut p, 3).len(), 2);
        assert_eq!(p.chains.len(), 3);
    }

    #[test]
    fn the_number_of_chains_ramps_up() {
        let mut p = Plan::new(vec![Chain::new(Slice { gte: 0, lt: 1_000_001 }, None)]);
        p.page_done(0, seen("o100", 999_900, 1_000_000, true));
        // After one full page: no cut, a list of two pages is paged as alone.
        assert_eq!(p.next(64), Next::Page(0));
        p.chains[0].in_flight = true;
        p.page_done(0, seen("p", 999_800, 999_899, true));
        // After two: up to four chains.
        assert_eq!(cuts(&mut p, 64).len(), 3);
        // A chain in flight is not cut; after its answer (three full pages), up to six.
        p.chains[0].in_flight = true;
        assert!(cuts(&mut p, 64).is_empty());
        p.page_done(0, seen("q", 999_790, 999_799, true));
        assert!(cuts(&mut p, 64).len() <= 2 && p.chains.len() <= 6);
        // A chain whose last page was not full is not cut.
        let mut q = Plan::new(vec![Chain::new(Slice { gte: 0, lt: 1_000_001 }, None)]);
        q.page_done(
            0,
            PageSeen { full: false, has_more: false, ..seen("x", 999_900, 1_000_000, false) },
        );
        q.answered = 10;
        assert_eq!(q.next(64), Next::Wait);
    }

    #[test]
    fn near_the_end_a_chain_is_halved() {
        let mut p = Plan::new(vec![Chain::new(Slice { gte: 0, lt: 1001 }, None)]);
        p.answered = 10;
        // 100 objects over 100 s and 600 s left: six pages; the cursor's chain keeps three.
        p.page_done(0, seen("a", 600, 700, true));
        assert_eq!(
            cuts(&mut p, 2),
            vec![(Slice { gte: 300, lt: 1001 }, Slice { gte: 0, lt: 300 })]
        );
    }

    #[test]
    fn a_chain_with_little_left_is_not_cut() {
        let mut p = Plan::new(vec![Chain::new(Slice { gte: 900, lt: 1001 }, None)]);
        p.answered = 10;
        // 100 objects over 100 s, 100 s left: one page.
        p.page_done(0, seen("a", 1000 - 100, 1000, true));
        assert_eq!(p.chains[0].pages_left(i64::MIN), 0.0);
        assert_eq!(p.next(64), Next::Page(0));
    }

    #[test]
    fn the_chain_with_most_left_is_cut_and_waiting_chains_go_first() {
        let mut p = Plan::new(vec![
            Chain::new(Slice { gte: 0, lt: 10_000 }, None),
            Chain::new(Slice { gte: 10_000, lt: 20_000 }, None),
        ]);
        assert_eq!(p.next(64), Next::Page(1), "the newest waiting chain first");
        p.chains[1].in_flight = true;
        assert_eq!(p.next(64), Next::Page(0));
        p.answered = 10;
        p.page_done(0, seen("a", 9_000, 9_990, true)); // ~9 pages left
        p.page_done(1, seen("b", 19_900, 19_990, true)); // ~110 pages left
        assert!(matches!(p.next(64), Next::Cut { from: 1, .. }));
    }

    #[test]
    fn a_last_page_ends_its_chain() {
        let mut p = Plan::new(vec![Chain::new(Slice { gte: 0, lt: 10 }, None)]);
        p.chains[0].in_flight = true;
        p.page_done(0, seen("z", 1, 5, false));
        assert!(p.all_done());
        let mut p = Plan::new(vec![Chain::new(Slice { gte: 0, lt: 10 }, None)]);
        p.page_done(0, PageSeen::default()); // an empty page
        assert!(p.all_done() && p.chains[0].after.is_none());
    }

    #[test]
    fn progress_says_the_pace_and_the_time_left() {
        assert_eq!(progress(0, 3.0, None), None);
        assert_eq!(progress(5000, 2.0, None).as_deref(), Some("5000 objects in 2 s (2500/s)"));
        assert_eq!(
            progress(5000, 2.0, Some(10_000)).as_deref(),
            Some("5000 objects in 2 s (2500/s); about 10000 left, 4 s at this pace")
        );
        let mut p = Plan::new(vec![Chain::new(Slice { gte: 0, lt: 1001 }, None)]);
        p.floor = 0;
        p.page_done(0, seen("a", 900, 1000, true)); // 9 pages' time left at this density
        assert_eq!(p.objects_left(), 900);
    }

    #[test]
    fn in_flight_follows_the_budget_and_the_latency() {
        assert_eq!(in_flight_for(25.0, 0.3), 11);
        assert_eq!(in_flight_for(100.0, 0.3), 39);
        assert_eq!(in_flight_for(25.0, 0.0), 2);
        assert_eq!(in_flight_for(1000.0, 2.0), 64);
        assert_eq!(in_flight_for(f64::INFINITY, 1.0), 64);
    }
}
