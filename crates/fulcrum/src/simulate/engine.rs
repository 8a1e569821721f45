//! The simulated cluster: seeded random streams, the workload's
//! distributions, and a discrete-event model of backends that serve their
//! requests by processor sharing.
//!
//! Why processor sharing (PS): a backend of a load balancer serves many
//! requests at once (threads, an event loop), each slowed down by the others;
//! PS is the standard model of that (Kleinrock, "Queueing Systems, Vol. 2",
//! 1976, ch. 4). It also makes heavy-tailed service times tractable: an
//! M/G/1-PS queue holds a geometric number of requests, `P(N >= k) = rho^k`,
//! whatever the service-time distribution (the insensitivity of PS), whereas a
//! FIFO queue fed Pareto(1.5) service times, whose variance is infinite, has
//! an infinite mean queue. The theory curves of the report lean on this.
//!
//! Time is simulated, in nanoseconds as `f64`, and never read from a clock, so
//! a run is fast and every run with the same seed gives the same numbers.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use fulcrum_balance::{LoadView, PeakEwma, PeakEwmaConfig};

use super::workload::{Stream, Work};

/// What the balancers read: in-flight counts (with a running total, so that
/// `consistent_bounded` does not sum them per pick) and one [`PeakEwma`] per
/// backend, fed the latency of every completed request as a proxy would.
pub(crate) struct SimLoad {
    pub(crate) active: Vec<u64>,
    pub(crate) ewma: Vec<PeakEwma>,
    total: u64,
}

impl SimLoad {
    pub(crate) fn new(n: usize) -> Self {
        Self {
            active: vec![0; n],
            ewma: (0..n)
                .map(|_| PeakEwma::new(PeakEwmaConfig::DEFAULT, 0))
                .collect(),
            total: 0,
        }
    }

    /// Counts one more request on `b` without completing any (balls into
    /// bins).
    pub(crate) fn add(&mut self, b: usize) {
        self.active[b] += 1;
        self.total += 1;
    }
}

impl LoadView for SimLoad {
    fn active_requests(&self, index: usize) -> u64 {
        self.active[index]
    }
    fn total_active_requests(&self, len: usize) -> u64 {
        if len == self.active.len() {
            self.total
        } else {
            self.active[..len].iter().sum()
        }
    }
    fn peak_ewma(&self, index: usize) -> Option<&PeakEwma> {
        self.ewma.get(index)
    }
}

/// Backends grouped by in-flight count, so that the least and most loaded are
/// known in O(1): the exact least-request pick (uniform among the least
/// loaded, as `LeastRequest`'s full scan breaks ties) and the per-snapshot
/// maximum, without an O(n) scan of 10 000 backends per request.
struct Levels {
    /// `members[k]`: the backends with `k` requests in flight.
    members: Vec<Vec<u32>>,
    /// Position of each backend in its `members` list.
    slot: Vec<u32>,
    min: usize,
    max: usize,
}

impl Levels {
    fn new(n: usize) -> Self {
        Self {
            members: vec![(0..n as u32).collect()],
            slot: (0..n as u32).collect(),
            min: 0,
            max: 0,
        }
    }

    fn take(&mut self, b: usize, level: usize) {
        let list = &mut self.members[level];
        let at = self.slot[b] as usize;
        list.swap_remove(at);
        if let Some(&moved) = list.get(at) {
            self.slot[moved as usize] = at as u32;
        }
    }

    fn put(&mut self, b: usize, level: usize) {
        if self.members.len() <= level {
            self.members.resize_with(level + 1, Vec::new);
        }
        self.slot[b] = self.members[level].len() as u32;
        self.members[level].push(b as u32);
    }

    /// Backend `b` went from `from` to `from + 1` in flight.
    fn up(&mut self, b: usize, from: usize) {
        self.take(b, from);
        self.put(b, from + 1);
        self.max = self.max.max(from + 1);
        while self.members[self.min].is_empty() {
            self.min += 1;
        }
    }

    /// Backend `b` went from `from` (>= 1) to `from - 1` in flight.
    fn down(&mut self, b: usize, from: usize) {
        self.take(b, from);
        self.put(b, from - 1);
        self.min = self.min.min(from - 1);
        while self.members[self.max].is_empty() {
            self.max -= 1;
        }
    }
}

/// One backend's processor-sharing state. With `k` requests in flight each
/// gets `speed / k` of the backend, so all of them advance together in
/// "virtual time" (work done per request): a request of work `w` admitted at
/// virtual time `v` completes when virtual time reaches `v + w`.
struct PsQueue {
    virt: f64,
    /// Simulated time `virt` was last brought up to date.
    last: f64,
    speed: f64,
    /// Bumped on every change, to skip completion events that went stale.
    version: u32,
    /// (virtual finish time, arrival time), as `f64` bits: non-negative
    /// floats order like their bit patterns.
    jobs: BinaryHeap<Reverse<(u64, u64)>>,
}

/// A completed request.
pub(crate) struct Completion {
    pub(crate) arrived: f64,
    pub(crate) done: f64,
}

/// `n` processor-sharing backends and the pending completion events.
pub(crate) struct PsCluster {
    pub(crate) load: SimLoad,
    queues: Vec<PsQueue>,
    /// (time bits, backend, version): the next completion of each backend,
    /// plus stale entries skipped lazily.
    events: BinaryHeap<Reverse<(u64, u32, u32)>>,
    levels: Levels,
}

impl PsCluster {
    pub(crate) fn new(n: usize) -> Self {
        Self {
            load: SimLoad::new(n),
            queues: (0..n)
                .map(|_| PsQueue {
                    virt: 0.0,
                    last: 0.0,
                    speed: 1.0,
                    version: 0,
                    jobs: BinaryHeap::new(),
                })
                .collect(),
            events: BinaryHeap::new(),
            levels: Levels::new(n),
        }
    }

    /// Brings backend `b`'s virtual time up to `now`.
    fn advance(&mut self, b: usize, now: f64) {
        let q = &mut self.queues[b];
        let k = q.jobs.len();
        if k > 0 && now > q.last {
            q.virt += (now - q.last) * q.speed / k as f64;
        }
        q.last = now.max(q.last);
    }

    /// Replaces `b`'s pending completion event after a change.
    fn reschedule(&mut self, b: usize) {
        let q = &mut self.queues[b];
        q.version = q.version.wrapping_add(1);
        if let Some(Reverse((finish, _))) = q.jobs.peek() {
            let left = (f64::from_bits(*finish) - q.virt).max(0.0);
            let at = q.last + left * q.jobs.len() as f64 / q.speed;
            self.events
                .push(Reverse((at.to_bits(), b as u32, q.version)));
        }
    }

    /// A request of `work` ns (at speed 1) arrives at backend `b` at `now`.
    pub(crate) fn arrive(&mut self, now: f64, b: usize, work: f64) {
        self.advance(b, now);
        let q = &mut self.queues[b];
        q.jobs
            .push(Reverse(((q.virt + work).to_bits(), now.to_bits())));
        let from = self.load.active[b] as usize;
        self.load.add(b);
        self.levels.up(b, from);
        self.reschedule(b);
    }

    /// Starts every backend in the steady state that random splitting of a
    /// Poisson stream at utilisation `rho` leads to: each backend an
    /// independent M/G/1 processor-sharing queue, holding `k` requests with
    /// probability `(1 - rho) rho^k` whatever the work distribution, their
    /// remaining works independent draws from its equilibrium distribution
    /// (Kleinrock 1976, ch. 4; Kelly, "Reversibility and Stochastic Networks",
    /// 1979, ch. 3). Exact for random only, so only random starts this way;
    /// the other algorithms start empty and warm up (they drain this state
    /// more slowly than they fill from empty).
    pub(crate) fn fill_steady_state(&mut self, rho: f64, work: &Work, rng: &mut Stream) {
        for b in 0..self.queues.len() {
            let k = (rng.unit().ln() / rho.ln()).floor() as usize;
            for _ in 0..k {
                let r = work.residual(rng);
                self.arrive(0.0, b, r);
            }
        }
    }

    /// Backend `b` serves at `speed` (1 = normal) from `now` on.
    pub(crate) fn set_speed(&mut self, now: f64, b: usize, speed: f64) {
        self.advance(b, now);
        self.queues[b].speed = speed;
        self.reschedule(b);
    }

    fn next_completion(&mut self) -> Option<f64> {
        while let Some(&Reverse((at, b, version))) = self.events.peek() {
            if self.queues[b as usize].version == version {
                return Some(f64::from_bits(at));
            }
            self.events.pop();
        }
        None
    }

    /// Completes every request due by `until`, in time order, feeding each
    /// latency to the backend's [`PeakEwma`] and then to `done`.
    pub(crate) fn run_until(&mut self, until: f64, mut done: impl FnMut(&Completion)) {
        while let Some(at) = self.next_completion() {
            if at > until {
                break;
            }
            let Some(Reverse((_, b, _))) = self.events.pop() else {
                break;
            };
            let b = b as usize;
            self.advance(b, at);
            let q = &mut self.queues[b];
            let Some(Reverse((finish, arrived))) = q.jobs.pop() else {
                continue;
            };
            // Rounding may leave virtual time a hair short of the finish.
            q.virt = q.virt.max(f64::from_bits(finish));
            let arrived = f64::from_bits(arrived);
            let from = self.load.active[b] as usize;
            self.load.active[b] -= 1;
            self.load.total -= 1;
            self.levels.down(b, from);
            self.load.ewma[b].observe(at as u64, (at - arrived) as u64);
            self.reschedule(b);
            done(&Completion { arrived, done: at });
        }
    }

    /// Arrival times of the requests still in flight on backend `b`.
    pub(crate) fn pending(&self, b: usize) -> impl Iterator<Item = f64> + '_ {
        self.queues[b]
            .jobs
            .iter()
            .map(|Reverse((_, arrived))| f64::from_bits(*arrived))
    }

    /// The largest in-flight count of any backend.
    pub(crate) fn max_active(&self) -> u64 {
        self.levels.max as u64
    }

    /// Exact least request: a backend with the fewest requests in flight,
    /// uniformly among ties. The same choice as `LeastRequest`'s full scan
    /// (`choice_count >= n`), in O(1) instead of O(n).
    pub(crate) fn least_loaded(&self, random: u64) -> usize {
        let list = &self.levels.members[self.levels.min];
        list[fulcrum_balance::rng::uniform(random, list.len())] as usize
    }
}

/// What a scenario does during an open-loop run (see [`drive`]).
pub(crate) trait Driver {
    /// At every multiple of the tick step, with completions up to `now`
    /// applied: sample, change a backend's speed ...
    fn tick(&mut self, cluster: &mut PsCluster, now: f64);
    /// The backend for a request arriving at `now`.
    fn route(&mut self, cluster: &PsCluster, now: f64) -> usize;
    /// A request completed.
    fn completed(&mut self, done: &Completion);
}

/// Open loop: Poisson arrivals with mean gap `gap` ns and work drawn from
/// `work`, from `arrivals` (so every algorithm fed the same stream sees the
/// same requests), until `end` ns; ticks every `step` ns from `first_tick`.
pub(crate) struct OpenLoop<'a> {
    pub(crate) arrivals: &'a mut Stream,
    pub(crate) work: Work,
    pub(crate) gap: f64,
    pub(crate) first_tick: f64,
    pub(crate) step: f64,
    pub(crate) end: f64,
}

/// Runs `cluster` under `load`, calling back into `driver`.
pub(crate) fn drive(cluster: &mut PsCluster, load: OpenLoop<'_>, driver: &mut impl Driver) {
    let (mut now, mut next_tick) = (0.0, load.first_tick);
    loop {
        let t = now + load.arrivals.exponential(load.gap);
        let work = load.work.sample(load.arrivals);
        while next_tick <= t && next_tick < load.end {
            cluster.run_until(next_tick, |c| driver.completed(c));
            driver.tick(cluster, next_tick);
            next_tick += load.step;
        }
        if t >= load.end {
            break;
        }
        cluster.run_until(t, |c| driver.completed(c));
        now = t;
        let b = driver.route(cluster, now);
        cluster.arrive(now, b, work);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_loaded_and_max_track_the_counts() {
        let mut c = PsCluster::new(50);
        let mut s = Stream::new(7);
        for i in 0..2_000 {
            let now = f64::from(i) * 10.0;
            c.run_until(now, |_| {});
            let b = if i % 3 == 0 {
                c.least_loaded(s.next_u64())
            } else {
                fulcrum_balance::rng::uniform(s.next_u64(), 50)
            };
            let min = *c.load.active.iter().min().unwrap();
            if i % 3 == 0 {
                assert_eq!(c.load.active[b], min);
            }
            c.arrive(now, b, Work::new(1.5, 300.0, 30_000.0).sample(&mut s));
            assert_eq!(c.max_active(), *c.load.active.iter().max().unwrap());
            assert_eq!(c.load.total, c.load.active.iter().sum::<u64>());
        }
        c.run_until(f64::MAX, |_| {});
        assert_eq!(c.load.total, 0);
        assert_eq!(c.max_active(), 0);
    }

    #[test]
    fn one_backend_serves_by_processor_sharing() {
        // Two requests of work 10 and 30 arriving together: both run at half
        // speed until the first is done at 20, the second then alone until
        // 20 + 20 = 40.
        let mut c = PsCluster::new(1);
        c.arrive(0.0, 0, 10.0);
        c.arrive(0.0, 0, 30.0);
        let mut done = Vec::new();
        c.run_until(100.0, |x| done.push(x.done));
        assert_eq!(done, [20.0, 40.0]);
    }
}
