//! [`StdPool`]: a [`Parallel`] executor with one persistent worker thread
//! (feature `std`).
//!
//! A thread per layer would cost tens of microseconds each, for ~30 layers of
//! a 4 ms inference; the worker is started once and waits for jobs. It spins
//! for a few microseconds after each job, then yields the CPU between checks
//! for a short while (layers follow each other within microseconds; a busy
//! machine may need the core for the thread we wait for), then parks, so an
//! idle pool costs no CPU. The calling
//! thread runs one half of each join itself and waits the same way for the
//! other.

extern crate std;

use super::Parallel;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::boxed::Box;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

/// No job: the worker waits.
const IDLE: u8 = 0;
/// A job is in `Shared::job`: the worker may claim it (to `RUNNING`), or
/// the joining thread take it back (to `IDLE`) and run it itself.
const POSTED: u8 = 1;
/// The worker claimed the job and runs it.
const RUNNING: u8 = 2;
/// The worker finished the job: the joining thread may return.
const DONE: u8 = 3;

/// A type-erased pointer to the closure the worker runs. The lifetime is
/// erased; [`StdPool::join`] keeps the closure alive until the worker is done.
struct Job(*mut (dyn FnMut() + Send + 'static));

/// State shared by the pool's handle and its worker.
struct Shared {
    /// `IDLE`, `POSTED`, `RUNNING` or `DONE`.
    state: AtomicU8,
    /// A join owns the worker (the others run their closures inline).
    busy: AtomicBool,
    /// The job: written by the owner of `busy` before `POSTED`, taken by the
    /// worker after its `POSTED -> RUNNING` exchange succeeded (or cleared by
    /// the owner after its `POSTED -> IDLE` exchange did).
    job: UnsafeCell<Option<Job>>,
    /// The thread waiting in `join`, to unpark when the job is done (same
    /// protocol as `job`).
    caller: UnsafeCell<Option<Thread>>,
    /// The last job panicked.
    panicked: AtomicBool,
    /// The pool was dropped: the worker exits.
    stop: AtomicBool,
    /// How long a waiting thread spins before it parks.
    spin: Duration,
}

// SAFETY: `job` and `caller` are only written by the thread that owns `busy`
// while `state` is `IDLE` (the worker does not touch them then), and only read
// and cleared by whichever thread wins the exchange out of `POSTED` (the
// worker: `POSTED -> RUNNING`, Acquire, after the owner's Release store; then
// it stores `DONE`, Release, and the owner waits for it with Acquire before
// touching them again; or the owner: `POSTED -> IDLE`, after which the worker
// cannot claim the job). The closure behind `Job` is `Send`, and `Thread` is
// `Send + Sync`.
unsafe impl Sync for Shared {}
// SAFETY: as above: the raw closure pointer is only dereferenced by the
// worker while the owner of `busy` keeps the `Send` closure alive.
unsafe impl Send for Shared {}

/// A two-thread [`Parallel`] executor: the calling thread and one persistent
/// worker thread. Create it once and reuse it for every inference.
///
/// Waiting threads spin for up to [`StdPool::DEFAULT_SPIN`] (or the duration
/// given to [`StdPool::with_spin`]) and then park, so an idle pool uses no
/// CPU. When the calling thread has finished its closure before the worker
/// started the other one (the worker was descheduled, or still parked), it
/// takes that closure back and runs it itself instead of waiting. A join issued while the worker is busy (a nested join, or another
/// thread using the same pool) runs both closures on the calling thread.
/// Both closures run even when one panics; the (first) panic is re-raised by
/// [`join`](Parallel::join) after both finished; the pool stays usable. Dropping the pool stops and joins
/// the worker.
pub struct StdPool {
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
}

impl StdPool {
    /// How long a waiting thread spins before parking, by default.
    pub const DEFAULT_SPIN: Duration = Duration::from_micros(500);

    /// Starts the worker thread, with the default spin time.
    ///
    /// # Panics
    /// If the thread cannot be spawned.
    pub fn new() -> Self {
        Self::with_spin(Self::DEFAULT_SPIN)
    }

    /// Starts the worker thread; waiting threads spin for `spin`, then park.
    ///
    /// # Panics
    /// If the thread cannot be spawned.
    pub fn with_spin(spin: Duration) -> Self {
        let shared = Arc::new(Shared {
            state: AtomicU8::new(IDLE),
            busy: AtomicBool::new(false),
            job: UnsafeCell::new(None),
            caller: UnsafeCell::new(None),
            panicked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            spin,
        });
        let s = Arc::clone(&shared);
        let worker = thread::Builder::new()
            .name("mncc-worker".into())
            .spawn(move || worker(&s))
            .expect("mncc_runtime::par::StdPool: cannot spawn the worker thread");
        StdPool {
            shared,
            worker: Some(worker),
        }
    }
}

impl Default for StdPool {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for StdPool {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StdPool").field("spin", &self.shared.spin).finish()
    }
}

/// Busy-waits this long before yielding the CPU between checks.
const PURE_SPIN: Duration = Duration::from_micros(5);

/// Waits until `ready()`: spins for [`PURE_SPIN`], then yields the CPU
/// between checks (on a busy machine the thread we wait for may need this
/// core) until `spin` has passed, then parks between checks (the other
/// thread unparks it when it makes `ready()` true).
#[inline]
fn wait(spin: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    let mut phase = 0; // 0 spin, 1 yield, 2 park
    let mut i = 0u32;
    while !ready() {
        match phase {
            0 => {
                core::hint::spin_loop();
                i = i.wrapping_add(1);
                if i.is_multiple_of(64) && start.elapsed() >= PURE_SPIN {
                    phase = 1;
                }
            }
            1 => {
                thread::yield_now();
                if start.elapsed() >= spin {
                    phase = 2;
                }
            }
            _ => thread::park(),
        }
    }
}

fn worker(s: &Shared) {
    loop {
        wait(s.spin, || {
            s.state.load(Ordering::Relaxed) == POSTED || s.stop.load(Ordering::Acquire)
        });
        if s.stop.load(Ordering::Acquire) {
            return;
        }
        if s.state
            .compare_exchange(POSTED, RUNNING, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            continue; // the joining thread took the job back
        }
        // SAFETY: `POSTED` was stored (Release, synchronized by the Acquire
        // exchange above) after the owner of `busy` wrote `job` and `caller`;
        // having won the exchange, this thread alone touches them until it
        // stores `DONE` (see `Shared`).
        let (job, caller) = unsafe { ((*s.job.get()).take(), (*s.caller.get()).take()) };
        if let Some(Job(f)) = job {
            // SAFETY: the closure is alive and not used elsewhere until
            // `DONE`: `StdPool::join` waits for it before returning.
            let r = catch_unwind(AssertUnwindSafe(|| unsafe { (*f)() }));
            s.panicked.store(r.is_err(), Ordering::Relaxed);
        }
        s.state.store(DONE, Ordering::Release);
        if let Some(t) = caller {
            t.unpark();
        }
    }
}

impl Parallel for StdPool {
    fn threads(&self) -> usize {
        2
    }

    fn join(&self, a: &mut (dyn FnMut() + Send), b: &mut (dyn FnMut() + Send)) {
        let s = &*self.shared;
        let worker = self.worker.as_ref().expect("worker runs until drop").thread();
        if s.busy.swap(true, Ordering::Acquire) {
            // Nested or concurrent: the worker is taken.
            a();
            b();
            return;
        }
        let b_ptr: *mut (dyn FnMut() + Send + '_) = &mut *b;
        // SAFETY: only the lifetime bound of the trait object changes (same
        // layout); this function does not return before the worker has
        // finished with the closure (it waits for `DONE` below, even when `a`
        // panics) or can no longer start it (taken back).
        let job: *mut (dyn FnMut() + Send + 'static) = unsafe { core::mem::transmute(b_ptr) };
        // SAFETY: this thread owns `busy` and the state is `IDLE`: the worker
        // does not access `job` or `caller` now (see `Shared`).
        unsafe {
            *s.job.get() = Some(Job(job));
            *s.caller.get() = Some(thread::current());
        }
        s.state.store(POSTED, Ordering::Release);
        worker.unpark();
        let ra = catch_unwind(AssertUnwindSafe(&mut *a));
        let taken_back = s
            .state
            .compare_exchange(POSTED, IDLE, Ordering::Acquire, Ordering::Relaxed)
            .is_ok();
        let mut rb = Ok(());
        if taken_back {
            // SAFETY: this thread won the exchange out of `POSTED`: the worker
            // will not touch `job` or `caller` (see `Shared`).
            unsafe {
                *s.job.get() = None;
                *s.caller.get() = None;
            }
            rb = catch_unwind(AssertUnwindSafe(&mut *b));
        } else {
            wait(s.spin, || s.state.load(Ordering::Acquire) == DONE);
            s.state.store(IDLE, Ordering::Relaxed);
        }
        let panicked = s.panicked.swap(false, Ordering::Relaxed);
        s.busy.store(false, Ordering::Release);
        if let Err(p) = ra.and(rb) {
            resume_unwind(p);
        }
        if panicked {
            resume_unwind(Box::new(
                "mncc_runtime::par::StdPool: a closure panicked on the worker thread",
            ));
        }
    }
}

impl Drop for StdPool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(w) = self.worker.take() {
            w.thread().unpark();
            let _ = w.join();
        }
    }
}
