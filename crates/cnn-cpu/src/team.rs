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
    /// Bumped by every post.
    generation: u64,
    /// Helpers running the posted work right now.
    inside: usize,
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
    state: Mutex<State>,
    wake: Condvar,
}

// SAFETY: `pool` is only compared, never dereferenced.
unsafe impl Sync for Team {}

impl Team {
    fn new(pool: &rayon::ThreadPool) -> Self {
        Team {
            pool,
            posted: AtomicU64::new(0),
            sleeping: AtomicUsize::new(0),
            state: Mutex::new(State {
                work: None,
                generation: 0,
                inside: 0,
                nudges: 0,
                closed: false,
            }),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Offer `work` to the helpers. The caller must call
    /// [`Team::retract`] before `work` is dropped.
    fn post(&self, work: &dyn Work) {
        // SAFETY: only the lifetime is erased; `retract` waits until no
        // helper holds the pointer.
        let erased = unsafe {
            std::mem::transmute::<*const (dyn Work + '_), *const (dyn Work + 'static)>(work)
        };
        let mut state = self.lock();
        state.work = Some(WorkRef(erased));
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

    /// Withdraw the posted work and wait until no helper is inside it.
    fn retract(&self) {
        self.lock().work = None;
        spin_until(|| self.lock().inside == 0);
    }

    /// End the team: every helper returns.
    fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        self.posted.fetch_add(1, Ordering::Release);
        self.wake.notify_all();
    }

    /// A helper's loop: run each posted work until the team closes.
    fn help(&self, pool: &rayon::ThreadPool) {
        let mut seen = 0;
        loop {
            self.wait_for_news(pool, seen);
            let mut state = self.lock();
            if state.closed {
                return;
            }
            seen = state.generation;
            let Some(work) = state.work else { continue };
            state.inside += 1;
            drop(state);
            // SAFETY: `retract` cannot return while `inside` counts us.
            unsafe { (*work.0).work() };
            self.lock().inside -= 1;
        }
    }

    /// Poll until a post newer than `seen` or the close, stealing rayon
    /// jobs meanwhile; after [`LINGER`] with neither, wait for a post, a
    /// nudge or the close.
    fn wait_for_news(&self, pool: &rayon::ThreadPool, seen: u64) {
        let news = || self.posted.load(Ordering::Acquire) != seen;
        loop {
            let mut last_busy = Instant::now();
            loop {
                for _ in 0..SPINS_PER_CHECK {
                    if news() {
                        return;
                    }
                    if pool.yield_now() == Some(rayon::Yield::Executed) {
                        last_busy = Instant::now();
                    } else {
                        std::hint::spin_loop();
                    }
                }
                if last_busy.elapsed() >= LINGER {
                    break;
                }
            }
            let mut state = self.lock();
            let nudges = state.nudges;
            self.sleeping.fetch_add(1, Ordering::AcqRel);
            while state.generation == seen && state.nudges == nudges && !state.closed {
                state = self
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            self.sleeping.fetch_sub(1, Ordering::AcqRel);
            if state.generation != seen || state.closed {
                return;
            }
        }
    }
}

/// Spin until `done()`, yielding the CPU after [`LINGER`] (the other
/// party may have been descheduled).
fn spin_until(done: impl Fn() -> bool) {
    let start = Instant::now();
    loop {
        for _ in 0..SPINS_PER_CHECK {
            if done() {
                return;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() >= LINGER {
            std::thread::yield_now();
        }
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
    let team = Team::new(pool);
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
struct RetractOnDrop<'a>(&'a Team);

impl Drop for RetractOnDrop<'_> {
    fn drop(&mut self) {
        self.0.retract();
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
        team.post(&work);
        let _retract = RetractOnDrop(team);
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
            be.for_each_shard(&mut items, |_, t| {
                started.fetch_add(1, Ordering::SeqCst);
                let t0 = std::time::Instant::now();
                while started.load(Ordering::SeqCst) < 2 && t0.elapsed().as_secs() < 2 {
                    std::hint::spin_loop();
                }
                *t = Some(std::thread::current().id());
            });
        });
        assert_ne!(items[0], items[1], "both items ran on one thread");
    }

    /// A helper that has gone to sleep (no news for longer than
    /// `LINGER`) is woken by the next parallel op and steals its half.
    #[test]
    fn a_sleeping_helper_wakes_for_the_next_parallel_op() {
        let be = CpuBackend::with_threads(2).unwrap();
        let started = AtomicUsize::new(0);
        let wait_for_both = || {
            started.fetch_add(1, Ordering::SeqCst);
            let t0 = std::time::Instant::now();
            while started.load(Ordering::SeqCst) < 2 && t0.elapsed().as_secs() < 2 {
                std::hint::spin_loop();
            }
            std::thread::current().id()
        };
        let (a, b) = be.run(|| {
            std::thread::sleep(super::LINGER * 20);
            be.install(|| rayon::join(wait_for_both, wait_for_both))
        });
        assert_ne!(a, b, "the join's halves ran on one thread");
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
