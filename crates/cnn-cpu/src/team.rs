//! The workers of one [`Backend::run`](cnn_core::Backend::run) call kept
//! awake as a team, so that the data-parallel phases of a training step
//! (`for_each_shard`) start and end without waking a sleeping thread.
//!
//! Why: rayon parks an idle worker after a few dozen polls and wakes it
//! with a futex, and a `join` waiting for a stolen half parks the same
//! way. On the virtual machines this project is measured on, each wake-up
//! costs 10-40 µs. A LeNet-5 step on two threads has three phases of
//! 50-550 µs with serial work between them, so rayon's forks and joins
//! cost 6-9% of the step (performance.md, entry 24).
//!
//! How: [`run_as_team`] runs the body on the calling worker and a *helper*
//! job on each other worker of the pool. A helper polls for posted work
//! (running any rayon job it can steal meanwhile, so that the body's own
//! parallel ops still get every thread) and only after [`LINGER`] with
//! neither waits on a condition variable; the backend's parallel ops
//! [`nudge`] a waiting helper awake. [`for_each_shard`] posts its items;
//! the caller and the helpers claim them one at a time, and the caller
//! polls until the last is done. Nothing here allocates: the team lives
//! on the caller's stack and the helpers are `rayon::join` halves.
//!
//! Rayon may give a helper job to any thread that waits, including one
//! whose stack already holds a team's body or helper loop; such a thread
//! declines it (the team is one member short, nothing blocks). Helpers
//! steal no rayon job until every helper has started (or for `LINGER`),
//! so that none swallows a sibling's helper job.

use std::any::Any;
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long an idle helper polls before it waits on the condition
/// variable. Longer than any serial gap inside a step (~150 µs), far
/// shorter than OpenMP's default block time (200 ms).
const LINGER: Duration = Duration::from_millis(1);

/// Polls between clock reads while spinning.
const SPINS_PER_CHECK: u32 = 64;

thread_local! {
    /// The team whose body runs on this thread, if any.
    static CURRENT: Cell<*const Team> = const { Cell::new(std::ptr::null()) };
    /// Whether this thread runs a helper loop (of any team).
    static HELPING: Cell<bool> = const { Cell::new(false) };
}

/// Work posted to a team: the claim loop of one `for_each_shard` call.
trait Work: Sync {
    /// Claim and run items until none is left.
    fn work(&self);
}

/// A posted [`Work`] with its lifetime erased. `Team::retract` makes sure
/// no helper uses it after the poster's frame ends.
#[derive(Clone, Copy)]
struct WorkRef(*const (dyn Work + 'static));

// SAFETY: the pointee is `Sync` and outlives every use (see `Team::post`).
unsafe impl Send for WorkRef {}

/// What the body shares with its helpers.
struct State {
    work: Option<WorkRef>,
    /// Bumped by every post (and by a retract that restores an outer post).
    generation: u64,
    /// Bumped by every [`nudge`] that found a helper waiting.
    nudges: u64,
    closed: bool,
}

/// One `run` call's team; see the module docs.
pub(crate) struct Team {
    /// The pool the helpers belong to (identity only).
    pool: *const rayon::ThreadPool,
    /// `State::generation`, readable without the lock (helpers poll it).
    posted: AtomicU64,
    /// Helpers waiting on `wake`.
    sleeping: AtomicUsize,
    /// Helpers running posted work right now (they enter under the lock,
    /// while the work is posted).
    inside: AtomicUsize,
    /// Helper loops started, and how many were asked for: until all have
    /// started, a helper steals no rayon job (it could be a sibling's
    /// helper loop, which would then never reach its own worker).
    arrived: AtomicUsize,
    helpers: usize,
    /// Times a sleeping helper was woken by a nudge (what the tests can
    /// tell apart from the `LINGER` timeout).
    woken_by_nudge: AtomicUsize,
    state: Mutex<State>,
    wake: Condvar,
}

// SAFETY: `pool` is only compared, never dereferenced.
unsafe impl Sync for Team {}

impl Team {
    fn new(pool: &rayon::ThreadPool, helpers: usize) -> Self {
        Team {
            pool,
            posted: AtomicU64::new(0),
            sleeping: AtomicUsize::new(0),
            inside: AtomicUsize::new(0),
            arrived: AtomicUsize::new(0),
            helpers,
            woken_by_nudge: AtomicUsize::new(0),
            state: Mutex::new(State {
                work: None,
                generation: 0,
                nudges: 0,
                closed: false,
            }),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Offer `work` to the helpers, returning the work it replaces (a
    /// `for_each_shard` inside an item of another). The caller must call
    /// [`Team::retract`] with that before `work` is dropped.
    fn post(&self, work: &dyn Work) -> Option<WorkRef> {
        // SAFETY: only the lifetime is erased; `retract` waits until no
        // helper holds the pointer.
        let erased = unsafe {
            std::mem::transmute::<*const (dyn Work + '_), *const (dyn Work + 'static)>(work)
        };
        let mut state = self.lock();
        let outer = state.work.replace(WorkRef(erased));
        self.publish(&mut state);
        outer
    }

    /// Tell the helpers that the posted work changed.
    fn publish(&self, state: &mut State) {
        state.generation += 1;
        self.posted.store(state.generation, Ordering::Release);
        if self.sleeping.load(Ordering::Acquire) > 0 {
            self.wake.notify_all();
        }
    }

    /// Wake the helpers that wait on `wake`, so that they steal the
    /// rayon jobs the body is about to make.
    fn nudge(&self) {
        if self.sleeping.load(Ordering::Acquire) > 0 {
            self.lock().nudges += 1;
            self.wake.notify_all();
        }
    }

    /// Withdraw the posted work (putting `outer` back, if any) and wait
    /// until no helper is inside it. With an outer work, this also waits
    /// for the helpers inside that one, which is slow but sound.
    fn retract(&self, outer: Option<WorkRef>) {
        {
            let mut state = self.lock();
            state.work = outer;
            if outer.is_some() {
                self.publish(&mut state);
            }
        }
        spin_until(|| self.inside.load(Ordering::Acquire) == 0);
    }

    /// End the team: every helper returns.
    fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        self.posted.fetch_add(1, Ordering::Release);
        self.wake.notify_all();
    }

    /// A helper's loop: run each posted work until the team closes.
    ///
    /// Rayon may hand this job to any thread that waits, including one
    /// that runs a team's body or helper loop further down its stack
    /// (waiting in a `join`, or for another pool): blocking there would
    /// never let that frame resume. Such a thread returns at once and is
    /// simply not part of the team.
    fn help(&self, pool: &rayon::ThreadPool) {
        if HELPING.with(Cell::get) || !CURRENT.with(Cell::get).is_null() {
            return;
        }
        HELPING.with(|h| h.set(true));
        let _not_helping = NotHelping;
        self.arrived.fetch_add(1, Ordering::AcqRel);
        let mut seen = 0;
        loop {
            self.wait_for_news(pool, seen);
            let state = self.lock();
            if state.closed {
                return;
            }
            seen = state.generation;
            let Some(work) = state.work else { continue };
            self.inside.fetch_add(1, Ordering::AcqRel);
            drop(state);
            // SAFETY: `retract` cannot return while `inside` counts us.
            unsafe { (*work.0).work() };
            self.inside.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Poll until a post newer than `seen` or the close, stealing rayon
    /// jobs meanwhile; after [`LINGER`] with neither, wait for a post, a
    /// nudge or the close.
    fn wait_for_news(&self, pool: &rayon::ThreadPool, seen: u64) {
        let news = || self.posted.load(Ordering::Acquire) != seen;
        let started = Instant::now();
        let may_steal =
            || self.arrived.load(Ordering::Acquire) >= self.helpers || started.elapsed() >= LINGER;
        loop {
            let mut last_busy = Instant::now();
            loop {
                for _ in 0..SPINS_PER_CHECK {
                    if news() {
                        return;
                    }
                    if may_steal() && pool.yield_now() == Some(rayon::Yield::Executed) {
                        last_busy = Instant::now();
                    } else {
                        std::hint::spin_loop();
                    }
                }
                if last_busy.elapsed() >= LINGER {
                    break;
                }
                // Another thread may need this core more than a poll does
                // (more threads than cores); with none, this returns at once.
                std::thread::yield_now();
            }
            // Asleep until a post, a nudge or the close. The timeout covers
            // a nudge that raced with falling asleep: every LINGER the
            // helper looks once for a rayon job to steal.
            let mut state = self.lock();
            let nudges = state.nudges;
            self.sleeping.fetch_add(1, Ordering::AcqRel);
            let got_news = loop {
                if state.generation != seen || state.closed {
                    break true;
                }
                if state.nudges != nudges {
                    self.woken_by_nudge.fetch_add(1, Ordering::Relaxed);
                    break false;
                }
                let (next, timeout) = self
                    .wake
                    .wait_timeout(state, LINGER)
                    .unwrap_or_else(PoisonError::into_inner);
                state = next;
                if timeout.timed_out() {
                    drop(state);
                    let stole = pool.yield_now() == Some(rayon::Yield::Executed);
                    state = self.lock();
                    if stole {
                        break false;
                    }
                }
            };
            self.sleeping.fetch_sub(1, Ordering::AcqRel);
            if got_news {
                return;
            }
        }
    }
}

/// Spin until `done()`, offering the CPU to the operating system between
/// rounds (the party being waited for may need this core).
fn spin_until(done: impl Fn() -> bool) {
    loop {
        for _ in 0..SPINS_PER_CHECK {
            if done() {
                return;
            }
            std::hint::spin_loop();
        }
        std::thread::yield_now();
    }
}

/// Clears [`HELPING`] when a helper loop ends.
struct NotHelping;

impl Drop for NotHelping {
    fn drop(&mut self) {
        HELPING.with(|h| h.set(false));
    }
}

/// Closes the team when the body ends, by return or by panic (a helper
/// would otherwise wait forever and `join` with it).
struct CloseOnDrop<'a>(&'a Team);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Restores the thread's previous team when the body ends.
struct RestoreCurrent(*const Team);

impl Drop for RestoreCurrent {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}

/// Run `body` on this thread (a worker of `pool`) with `helpers` other
/// workers of `pool` as its team. Inside a team of the same pool, `body`
/// simply runs.
pub(crate) fn run_as_team<R: Send>(
    pool: &rayon::ThreadPool,
    helpers: usize,
    body: impl FnOnce() -> R + Send,
) -> R {
    if helpers == 0 || current_team(pool).is_some() {
        return body();
    }
    let team = Team::new(pool, helpers);
    with_helpers(pool, &team, helpers, || {
        let _close = CloseOnDrop(&team);
        let _restore = RestoreCurrent(CURRENT.with(|c| c.replace(&team)));
        body()
    })
}

/// `body` on this thread and `count` helper loops as `rayon::join` halves.
fn with_helpers<R: Send>(
    pool: &rayon::ThreadPool,
    team: &Team,
    count: usize,
    body: impl FnOnce() -> R + Send,
) -> R {
    if count == 0 {
        return body();
    }
    rayon::join(
        || with_helpers(pool, team, count - 1, body),
        || team.help(pool),
    )
    .0
}

/// The team of `pool` whose body runs on this thread.
fn current_team(pool: &rayon::ThreadPool) -> Option<&Team> {
    let team = CURRENT.with(Cell::get);
    // SAFETY: `CURRENT` points at a live team while its body runs on this
    // thread (`RestoreCurrent` resets it before the team is dropped), and
    // the reference does not leave that body.
    let team = unsafe { team.as_ref() }?;
    std::ptr::eq(team.pool, pool).then_some(team)
}

/// Called by the backend's parallel ops before they fork: wakes the
/// helpers of this thread's team (if any wait) to steal the halves.
pub(crate) fn nudge(pool: &rayon::ThreadPool) {
    if let Some(team) = current_team(pool) {
        team.nudge();
    }
}

/// The items of one `for_each_shard` call, claimed one at a time.
struct Items<'a, T, F> {
    queue: Mutex<std::iter::Enumerate<std::slice::IterMut<'a, T>>>,
    /// Items not finished yet.
    remaining: AtomicUsize,
    f: &'a F,
    /// The first panic of a helper, re-raised by the caller.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

impl<T: Send, F: Fn(usize, &mut T) + Sync> Items<'_, T, F> {
    fn claim_and_run(&self) {
        loop {
            let next = self
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .next();
            let Some((i, item)) = next else { return };
            let _done = Finished(&self.remaining);
            (self.f)(i, item);
        }
    }
}

/// Counts an item as finished even when it panics, so that the caller's
/// wait ends.
struct Finished<'a>(&'a AtomicUsize);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Release);
    }
}

impl<T: Send, F: Fn(usize, &mut T) + Sync> Work for Items<'_, T, F> {
    fn work(&self) {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| self.claim_and_run())) {
            self.panic
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_or_insert(payload);
        }
    }
}

/// Retracts the posted items when the caller's part ends, by return or by
/// panic, before they are dropped.
struct RetractOnDrop<'a>(&'a Team, Option<WorkRef>);

impl Drop for RetractOnDrop<'_> {
    fn drop(&mut self) {
        self.0.retract(self.1);
    }
}

/// `f(i, &mut items[i])` for every item, shared with the team of `pool`
/// when this thread runs one. Returns `false` (touching nothing) when
/// there is no team.
pub(crate) fn for_each_shard<T: Send>(
    pool: &rayon::ThreadPool,
    items: &mut [T],
    f: &(impl Fn(usize, &mut T) + Sync),
) -> bool {
    let Some(team) = current_team(pool) else {
        return false;
    };
    let work = Items {
        remaining: AtomicUsize::new(items.len()),
        queue: Mutex::new(items.iter_mut().enumerate()),
        f,
        panic: Mutex::new(None),
    };
    {
        let outer = team.post(&work);
        let _retract = RetractOnDrop(team, outer);
        work.claim_and_run();
        spin_until(|| work.remaining.load(Ordering::Acquire) == 0);
    }
    if let Some(payload) = work
        .panic
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
    {
        resume_unwind(payload);
    }
    true
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use cnn_core::Backend;

    use crate::CpuBackend;

    /// Count this thread in `started`, wait (at most 2 s) until `n` threads
    /// have, and return this thread's id: items or join halves that call
    /// it run on `n` threads at once whenever that many take part.
    fn start_together(started: &AtomicUsize, n: usize) -> std::thread::ThreadId {
        started.fetch_add(1, Ordering::SeqCst);
        let t0 = std::time::Instant::now();
        while started.load(Ordering::SeqCst) < n && t0.elapsed().as_secs() < 2 {
            std::thread::yield_now();
        }
        std::thread::current().id()
    }

    /// Every item is visited exactly once, inside and outside a team, for
    /// more items than threads, phase after phase.
    #[test]
    fn every_item_runs_once_per_call() {
        for threads in [2, 4] {
            let be = CpuBackend::with_threads(threads).unwrap();
            let mut items = vec![0u32; 37];
            be.run(|| {
                for _ in 0..50 {
                    be.for_each_shard(&mut items, |i, v| {
                        assert!(i < 37);
                        *v += 1;
                    });
                }
            });
            be.for_each_shard(&mut items, |_, v| *v += 1);
            assert!(
                items.iter().all(|&v| v == 51),
                "{threads} threads: {items:?}"
            );
        }
    }

    /// The helpers take part: with two threads, some items run on a thread
    /// other than the body's (each item waits until a second thread has
    /// started one, or 2 s).
    #[test]
    fn helpers_run_items() {
        let be = CpuBackend::with_threads(2).unwrap();
        let mut items = vec![None; 2];
        let started = AtomicUsize::new(0);
        be.run(|| {
            be.for_each_shard(&mut items, |_, t| *t = Some(start_together(&started, 2)));
        });
        assert_ne!(items[0], items[1], "both items ran on one thread");
    }

    /// A helper that has gone to sleep (no news for longer than
    /// `LINGER`) is woken by the next parallel op and steals its half.
    #[test]
    fn a_sleeping_helper_wakes_for_the_next_parallel_op() {
        let be = CpuBackend::with_threads(2).unwrap();
        let started = AtomicUsize::new(0);
        let wait_for_both = || start_together(&started, 2);
        let (a, b, nudged) = be.run(|| {
            std::thread::sleep(super::LINGER * 20);
            let (a, b) = be.install(|| rayon::join(wait_for_both, wait_for_both));
            let team = super::current_team(&be.pool).expect("inside run");
            (a, b, team.woken_by_nudge.load(Ordering::Relaxed))
        });
        assert_ne!(a, b, "the join's halves ran on one thread");
        // The timeout alone would also wake it, within LINGER.
        assert!(nudged >= 1, "the helper was not woken by the op's nudge");
    }

    /// Run `f` on its own thread; fail if it has not finished in `secs`.
    fn finishes_within(secs: u64, what: &str, f: impl FnOnce() + Send + 'static) {
        let (done, finished) = std::sync::mpsc::channel();
        let worker = std::thread::spawn(move || {
            f();
            let _ = done.send(());
        });
        match finished.recv_timeout(std::time::Duration::from_secs(secs)) {
            Ok(()) => worker.join().unwrap(),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                std::panic::resume_unwind(worker.join().unwrap_err())
            }
            Err(_) => panic!("{what}: still running after {secs} s (a hang)"),
        }
    }

    /// A team's body that uses a second pool: the body's thread waits for
    /// the other pool and may pick up its own team's helper job meanwhile,
    /// which must not block it.
    #[test]
    fn a_body_using_another_pool_does_not_hang() {
        finishes_within(20, "two pools", || {
            let a = CpuBackend::with_threads(2).unwrap();
            let b = CpuBackend::with_threads(2).unwrap();
            for i in 0..50 {
                let mut items = vec![0usize; 3];
                a.run(|| {
                    b.run(|| b.for_each_shard(&mut items, |j, v| *v = i + j));
                    a.for_each_shard(&mut items, |_, v| *v += 1);
                });
                assert_eq!(items, vec![i + 1, i + 2, i + 3]);
            }
        });
    }

    /// Items that fork on the team's own pool (here a `for_each_shard`
    /// inside an item, which on a helper's thread is rayon's) must not
    /// hang: a thread waiting in such a join may be handed another helper
    /// job of the team.
    #[test]
    fn items_that_fork_on_a_three_thread_pool_do_not_hang() {
        finishes_within(30, "forking items", || {
            let be = CpuBackend::with_threads(3).unwrap();
            for _ in 0..300 {
                // Idle workers fall asleep, so that helper jobs wait in the
                // body's queue for a while.
                std::thread::sleep(std::time::Duration::from_millis(2));
                let mut items = vec![vec![0u32; 64]; 4];
                be.run(|| {
                    be.for_each_shard(&mut items, |_, v| {
                        be.for_each_shard(v, |j, x| *x = j as u32);
                    });
                });
                for v in &items {
                    assert!(v.iter().enumerate().all(|(j, &x)| x == j as u32));
                }
            }
        });
    }

    /// Every worker of a four-thread pool joins the team when the body
    /// posts at once: four items that each wait for the others to start
    /// run on four threads. (The race the stealing gate closes, a helper
    /// taking a sibling's helper job, needs a body that waits first; it is
    /// too timing-dependent to test reliably, so this checks the team's
    /// size, not the gate.)
    #[test]
    fn a_four_thread_team_uses_four_threads() {
        let be = CpuBackend::with_threads(4).unwrap();
        for round in 0..10 {
            std::thread::sleep(std::time::Duration::from_millis(3));
            let mut items = vec![None; 4];
            let started = AtomicUsize::new(0);
            be.run(|| {
                be.for_each_shard(&mut items, |_, t| *t = Some(start_together(&started, 4)));
            });
            let mut ids: Vec<_> = items.iter().map(|t| format!("{t:?}")).collect();
            ids.sort();
            ids.dedup();
            assert_eq!(
                ids.len(),
                4,
                "round {round}: items ran on {} threads",
                ids.len()
            );
        }
    }

    /// A panic in an item reaches the caller of `run` (the helpers end),
    /// and the backend still works afterwards.
    #[test]
    fn a_panicking_item_panics_the_caller_without_hanging() {
        let be = CpuBackend::with_threads(2).unwrap();
        for bad in [0, 1, 5] {
            let mut items = vec![0u32; 6];
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                be.run(|| {
                    be.for_each_shard(&mut items, |i, v| {
                        assert_ne!(i, bad, "item {bad} fails");
                        *v = 1;
                    })
                })
            }));
            assert!(result.is_err(), "item {bad}: the panic was lost");
        }
        let mut items = vec![0u32; 6];
        be.run(|| be.for_each_shard(&mut items, |_, v| *v = 7));
        assert_eq!(items, vec![7; 6]);
    }

    /// `run` inside `run` runs its body in the same team, and parallel ops
    /// called by the body give the results they give outside.
    #[test]
    fn nested_runs_and_ops_inside_a_team() {
        use cnn_core::ElementwiseOps;
        let be = CpuBackend::with_threads(2).unwrap();
        let x: Vec<f32> = (0..200_000).map(|i| (i % 97) as f32 * 0.25).collect();
        let mut outside = vec![0.0f32; x.len()];
        be.axpy(0.5, &x, &mut outside).unwrap();
        let inside = be.run(|| {
            be.run(|| {
                let mut y = vec![0.0f32; x.len()];
                be.axpy(0.5, &x, &mut y).unwrap();
                let mut items = vec![0u8; 3];
                be.for_each_shard(&mut items, |_, v| *v = 1);
                assert_eq!(items, vec![1; 3]);
                y
            })
        });
        assert_eq!(inside, outside);
    }
}
