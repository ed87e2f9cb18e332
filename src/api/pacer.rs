//! The pacer: at most R requests per second per session, scheduled by request start time.
//!
//! Each session has a next free start time. A caller reserves the session whose slot comes
//! first, the slot moves one interval on, and the caller sleeps until its start. So K requests
//! on S sessions take about K/(S·R) seconds however long each response takes, and no session
//! ever starts two requests less than an interval apart. It uses tokio's clock, so tests drive
//! it with paused time.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Start times for a set of sessions.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    // A std Mutex, not a tokio one: it is held only for a few comparisons, never across an await.
    slots: Mutex<Vec<Slot>>,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    next: Instant,
    alive: bool,
    /// When the session's last request actually started.
    last_start: Option<Instant>,
    /// Extra spacing learnt from 429s: the way to the API jitters more than the margin.
    extra: Duration,
}

/// The most a session's spacing grows after 429s.
const MAX_EXTRA: Duration = Duration::from_millis(200);
/// How much one 429 adds.
const EXTRA_STEP: Duration = Duration::from_millis(10);

/// A reserved start: which session, and when to start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reservation {
    /// Index of the session.
    pub session: usize,
    /// When the request may start.
    pub at: Instant,
}

impl Pacer {
    /// A pacer for `sessions` sessions at `rate` requests per second each, plus `margin` per
    /// interval so network jitter cannot bring two arrivals closer than the API allows.
    /// A rate of 0 means no limit.
    pub fn new(sessions: usize, rate: f64, margin: Duration) -> Pacer {
        let interval = if rate > 0.0 {
            Duration::try_from_secs_f64(1.0 / rate).unwrap_or(Duration::MAX / 4) + margin
        } else {
            Duration::ZERO
        };
        let now = Instant::now();
        Pacer {
            interval,
            slots: Mutex::new(vec![
                Slot {
                    next: now,
                    alive: true,
                    last_start: None,
                    extra: Duration::ZERO,
                };
                sessions
            ]),
        }
    }

    /// The spacing between two starts on one session.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Reserves the earliest start on any live session, without waiting.
    pub fn reserve(&self) -> Option<Reservation> {
        let mut slots = self.slots.lock().expect("pacer lock");
        let now = Instant::now();
        let (session, slot) = slots
            .iter_mut()
            .enumerate()
            .filter(|(_, s)| s.alive)
            .min_by_key(|(_, s)| s.next)?;
        let at = slot.next.max(now);
        slot.next = at + self.interval + slot.extra;
        Some(Reservation { session, at })
    }

    /// Reserves the next start on one given session.
    pub fn reserve_on(&self, session: usize) -> Reservation {
        let mut slots = self.slots.lock().expect("pacer lock");
        let slot = &mut slots[session];
        let at = slot.next.max(Instant::now());
        slot.next = at + self.interval + slot.extra;
        Reservation { session, at }
    }

    /// Waits for the earliest start on any live session and returns which one it is.
    pub async fn acquire(&self) -> Option<usize> {
        let r = self.reserve()?;
        tokio::time::sleep_until(r.at).await;
        Some(r.session)
    }

    /// Waits for the next start on `session`.
    pub async fn acquire_on(&self, session: usize) {
        let r = self.reserve_on(session);
        tokio::time::sleep_until(r.at).await;
    }

    /// Marks the actual start of a request on `session`, or says how long to wait first.
    ///
    /// A reserved start can be reached late (a busy runtime wakes a task late), and the next
    /// reservation on the session can then be reached on time: this check right before sending
    /// keeps actual starts an interval apart, and moves later reservations along.
    pub fn start(&self, session: usize) -> Option<std::time::Duration> {
        let mut slots = self.slots.lock().expect("pacer lock");
        let slot = &mut slots[session];
        let now = Instant::now();
        if let Some(last) = slot.last_start {
            let earliest = last + self.interval + slot.extra;
            if now < earliest {
                return Some(earliest - now);
            }
        }
        slot.last_start = Some(now);
        slot.next = slot.next.max(now + self.interval + slot.extra);
        None
    }

    /// Waits until a request may actually start on `session`, and marks it started.
    pub async fn start_when_allowed(&self, session: usize) {
        while let Some(wait) = self.start(session) {
            tokio::time::sleep(wait).await;
        }
    }

    /// Keeps `session` idle until at least `until` (after a 429's retry-after), and spaces its
    /// requests a little more from then on.
    pub fn hold(&self, session: usize, until: Instant) {
        let mut slots = self.slots.lock().expect("pacer lock");
        let slot = &mut slots[session];
        slot.next = slot.next.max(until);
        if self.interval > Duration::ZERO {
            slot.extra = (slot.extra + EXTRA_STEP).min(MAX_EXTRA);
        }
    }

    /// Takes `session` out of the rotation (its session could not be renewed).
    pub fn retire(&self, session: usize) {
        self.slots.lock().expect("pacer lock")[session].alive = false;
    }

    /// Sessions still in the rotation.
    pub fn alive(&self) -> usize {
        let slots = self.slots.lock().expect("pacer lock");
        slots.iter().filter(|s| s.alive).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn starts_on_one_session_are_an_interval_apart_from_the_first_start() {
        let pacer = Arc::new(Pacer::new(1, 1.0, Duration::ZERO));
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let p = pacer.clone();
            tasks.push(tokio::spawn(async move {
                p.acquire().await;
                Instant::now()
            }));
        }
        let mut starts = Vec::new();
        for t in tasks {
            starts.push(t.await.unwrap() - t0);
        }
        starts.sort();
        let want: Vec<_> = (0..10).map(Duration::from_secs).collect();
        assert_eq!(starts, want);
    }

    #[tokio::test(start_paused = true)]
    async fn k_requests_on_s_sessions_take_k_over_s_intervals() {
        let pacer = Pacer::new(4, 2.0, Duration::ZERO);
        let t0 = Instant::now();
        let mut per_session = [0usize; 4];
        for _ in 0..40 {
            let s = pacer.acquire().await.unwrap();
            per_session[s] += 1;
        }
        // 40 starts over 4 sessions at 2/s: the last starts after 9 intervals of 0.5 s.
        assert_eq!(Instant::now() - t0, Duration::from_millis(4500));
        assert_eq!(per_session, [10; 4]);
    }

    #[tokio::test(start_paused = true)]
    async fn slow_responses_do_not_slow_the_schedule() {
        // Scheduling by start time: a request that takes 0.9 s does not delay the next start.
        let pacer = Arc::new(Pacer::new(1, 1.0, Duration::ZERO));
        let t0 = Instant::now();
        for _ in 0..5 {
            pacer.acquire().await;
            tokio::time::sleep(Duration::from_millis(900)).await;
        }
        assert_eq!(Instant::now() - t0, Duration::from_millis(4900));
    }

    #[tokio::test(start_paused = true)]
    async fn hold_and_retire_steer_reservations() {
        let pacer = Pacer::new(2, 1.0, Duration::from_millis(10));
        assert_eq!(pacer.interval(), Duration::from_millis(1010));
        let now = Instant::now();
        pacer.hold(0, now + Duration::from_secs(5));
        assert_eq!(pacer.reserve().unwrap().session, 1);
        pacer.retire(1);
        let r = pacer.reserve().unwrap();
        assert_eq!((r.session, r.at), (0, now + Duration::from_secs(5)));
        pacer.retire(0);
        assert_eq!(pacer.reserve(), None);
        assert_eq!(pacer.alive(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_start_pushes_the_next_one_back() {
        let pacer = Pacer::new(1, 1.0, Duration::ZERO);
        let t0 = Instant::now();
        assert_eq!(pacer.reserve().unwrap().at, t0);
        assert_eq!(pacer.reserve().unwrap().at, t0 + Duration::from_secs(1));
        // The first request was woken 800 ms late; the second is woken on time at 1 s.
        tokio::time::advance(Duration::from_millis(800)).await;
        assert_eq!(pacer.start(0), None);
        tokio::time::advance(Duration::from_millis(200)).await;
        assert_eq!(pacer.start(0), Some(Duration::from_millis(800)));
        pacer.start_when_allowed(0).await;
        assert_eq!(Instant::now() - t0, Duration::from_millis(1800));
        // Later reservations follow the actual starts.
        assert!(pacer.reserve().unwrap().at >= t0 + Duration::from_millis(2800));
    }

    #[test]
    fn rate_zero_means_no_spacing() {
        assert_eq!(
            Pacer::new(1, 0.0, Duration::from_millis(10)).interval(),
            Duration::ZERO
        );
    }
}
