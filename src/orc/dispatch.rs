//! Where materialization runs: on the thread that looks up
//! (`num_threads = 0`), or on a fixed pool of workers.
//!
//! A pool thread that must wait for a lookup (an initializer or a unit doing
//! a blocking lookup) helps run the queue while it waits, so the pool cannot
//! deadlock on its own tasks.

use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A unit of work for the dispatcher.
pub type Task = Box<dyn FnOnce() + Send>;

struct Queue {
    tasks: VecDeque<Task>,
    shutting_down: bool,
}

/// A fixed pool of worker threads sharing one queue.
pub(crate) struct Pool {
    queue: Mutex<Queue>,
    /// Signalled on new tasks, shutdown, and completion of any blocking wait.
    wake: Condvar,
    workers: Mutex<Vec<JoinHandle<()>>>,
    id: usize,
}

thread_local! {
    /// The id of the pool this thread works for, 0 if none.
    static WORKER_OF: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl Pool {
    pub(crate) fn new(num_threads: u32) -> Arc<Pool> {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
        let pool = Arc::new(Pool {
            queue: Mutex::new(Queue {
                tasks: VecDeque::new(),
                shutting_down: false,
            }),
            wake: Condvar::new(),
            workers: Mutex::new(Vec::new()),
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        });
        let mut workers = pool.workers.lock();
        for i in 0..num_threads {
            let p = pool.clone();
            let handle = std::thread::Builder::new()
                .name(format!("jitrt-worker-{i}"))
                .spawn(move || p.work())
                .expect("spawning a jitrt worker thread");
            workers.push(handle);
        }
        drop(workers);
        pool
    }

    fn work(&self) {
        WORKER_OF.with(|w| w.set(self.id));
        loop {
            let task = {
                let mut q = self.queue.lock();
                loop {
                    if let Some(t) = q.tasks.pop_front() {
                        break Some(t);
                    }
                    if q.shutting_down {
                        break None;
                    }
                    self.wake.wait(&mut q);
                }
            };
            match task {
                Some(t) => run_task(t),
                None => return,
            }
        }
    }

    /// Queues a task; after shutdown the task runs on the calling thread so
    /// that its resources are still released.
    pub(crate) fn spawn(&self, task: Task) {
        let mut q = self.queue.lock();
        if q.shutting_down {
            drop(q);
            run_task(task);
            return;
        }
        q.tasks.push_back(task);
        drop(q);
        self.wake.notify_one();
    }

    /// Whether the calling thread is one of this pool's workers.
    pub(crate) fn is_worker(&self) -> bool {
        WORKER_OF.with(|w| w.get()) == self.id
    }

    /// Waits until `done()` holds. A worker runs queued tasks meanwhile.
    pub(crate) fn help_until(&self, done: &dyn Fn() -> bool) {
        loop {
            if done() {
                return;
            }
            let task = {
                let mut q = self.queue.lock();
                match q.tasks.pop_front() {
                    Some(t) => Some(t),
                    None => {
                        if done() {
                            return;
                        }
                        // Completion signals `wake`; the timeout is only a
                        // backstop against a missed signal.
                        self.wake.wait_for(&mut q, Duration::from_millis(20));
                        None
                    }
                }
            };
            if let Some(t) = task {
                run_task(t);
            }
        }
    }

    /// Wakes every waiter (a blocking lookup finished).
    pub(crate) fn notify_all(&self) {
        let _q = self.queue.lock();
        self.wake.notify_all();
    }

    /// Runs what is queued, stops the workers and joins them (except the
    /// calling thread, if it is one of them).
    pub(crate) fn shutdown(&self) {
        {
            let mut q = self.queue.lock();
            q.shutting_down = true;
        }
        self.wake.notify_all();
        let workers = std::mem::take(&mut *self.workers.lock());
        let me = std::thread::current().id();
        for w in workers {
            if w.thread().id() != me {
                let _ = w.join();
            }
        }
        // Tasks queued after the workers left still run (they own
        // responsibilities that must fail or emit).
        loop {
            let t = self.queue.lock().tasks.pop_front();
            match t {
                Some(t) => run_task(t),
                None => break,
            }
        }
    }
}

/// Runs a task; a panicking task must not take its worker down.
fn run_task(task: Task) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(task));
}

/// The dispatcher a session uses.
pub(crate) enum Dispatcher {
    InPlace,
    Pool(Arc<Pool>),
}

impl Dispatcher {
    pub(crate) fn dispatch(&self, task: Task) {
        match self {
            Dispatcher::InPlace => run_task(task),
            Dispatcher::Pool(p) => p.spawn(task),
        }
    }
}
