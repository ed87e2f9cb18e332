//! Ctrl-C in the shell: cancels the running statement through DuckDB's interrupt.
//!
//! The shell owns SIGINT with a plain `sigaction` handler that only raises a flag. Neither
//! tokio's nor signal-hook's handler can be used: rustyline (without its `signal-hook` feature,
//! whose input loop stalls on typed-ahead text) installs its own SIGINT handler when the editor
//! is created and keeps it, so a handler registered before the editor never runs, and one
//! registered after it chains to rustyline's, which leaves a stray "interrupt" in rustyline's
//! signal pipe that cancels a later line. At the prompt the terminal is raw and Ctrl-C is a key
//! that rustyline reads itself; the handler only sees Ctrl-C while a statement runs (or any
//! SIGINT sent by `kill`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::query::Interrupter;

/// Set by the signal handler; taken by the watcher thread.
static SIGINT: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    SIGINT.store(true, Ordering::SeqCst);
}

/// How often the watcher looks at the flag, and re-sends the interrupt while the statement runs.
const TICK: Duration = Duration::from_millis(20);

/// The statement that Ctrl-C cancels.
#[derive(Default)]
pub struct Cancel {
    /// The running statement's number; 0 when none runs.
    running: AtomicU64,
    /// The last statement's number.
    last: AtomicU64,
    /// Ctrl-C was pressed since [`Cancel::pressed`] last asked.
    pressed: AtomicBool,
}

/// Marks a statement as running while it lives.
pub struct Running<'c>(&'c Cancel);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.store(0, Ordering::SeqCst);
    }
}

impl Cancel {
    /// Takes SIGINT over (call it after creating the line editor, which installs its own) and
    /// starts the thread that turns it into DuckDB interrupts; the thread ends with the
    /// returned `Cancel`.
    pub fn install(engine: Interrupter) -> std::io::Result<Arc<Cancel>> {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe; the
        // sigaction struct is fully initialised (zeroed, then the fields that matter set).
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t;
            // Reads at the prompt resume instead of failing with EINTR.
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        SIGINT.store(false, Ordering::SeqCst);
        let cancel = Arc::new(Cancel::default());
        let weak = Arc::downgrade(&cancel);
        std::thread::Builder::new()
            .name("ctrl-c".into())
            .spawn(move || watch(weak, engine))?;
        Ok(cancel)
    }

    /// Marks a statement as running until the returned guard drops.
    pub fn start(&self) -> Running<'_> {
        let n = self.last.fetch_add(1, Ordering::SeqCst) + 1;
        self.running.store(n, Ordering::SeqCst);
        Running(self)
    }

    /// Whether Ctrl-C was pressed since the last call.
    pub fn pressed(&self) -> bool {
        self.pressed.swap(false, Ordering::SeqCst)
    }

    /// Whether Ctrl-C was pressed, without forgetting it.
    pub fn was_pressed(&self) -> bool {
        self.pressed.load(Ordering::SeqCst)
    }
}

/// Turns each SIGINT into interrupts of the statement running at that moment. They repeat
/// until that statement ends, because running one statement starts several DuckDB queries
/// (preparing, executing, a retry on a newer commit) and an interrupt that lands before
/// execution begins may be cleared by it; they stop at its end, so the next statement is
/// never hit.
fn watch(cancel: Weak<Cancel>, engine: Interrupter) {
    loop {
        std::thread::sleep(TICK);
        let Some(cancel) = cancel.upgrade() else {
            return;
        };
        if !SIGINT.swap(false, Ordering::SeqCst) {
            continue;
        }
        cancel.pressed.store(true, Ordering::SeqCst);
        let statement = cancel.running.load(Ordering::SeqCst);
        while statement != 0 && cancel.running.load(Ordering::SeqCst) == statement {
            engine.interrupt();
            std::thread::sleep(TICK);
        }
    }
}
