//! How an HTTP worker hands its change requests to the sections' actors:
//! together, once a turn, one message to each arbiter thread.
//!
//! A message to an actor on another thread wakes that thread's runtime,
//! and tokio's current-thread runtime makes each such wake a system call
//! (an `eventfd` write), often followed by a switch to the woken thread
//! before the worker goes on. Under load a worker decides many requests
//! in one turn of its runtime (everything one `epoll` found ready), for
//! sections spread over a few arbiter threads. So the requests it makes
//! in a turn wait in a thread-local list, and once the turn's other ready
//! tasks have run, each arbiter gets one closure that gives each of its
//! sections a [`ChangeBatch`] of that section's requests: one wake-up of
//! the arbiter for all of them (the actors are woken on their own
//! thread, which costs no system call). A request waits at most for the
//! tasks that were ready before the hand-off, never for the network or a
//! timer.
//!
//! Nothing is decided differently: a section decides a batch's requests
//! in the order they were made, each exactly as if it came alone, and
//! each is answered on its own channel.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix::{Addr, ArbiterHandle};

use super::section::{ChangeBatch, ChangeRequest, SectionActor};

/// An arbiter thread that section actors run on.
#[derive(Clone)]
pub struct Thread {
    /// Unique in the process: requests for the same thread go together.
    id: usize,
    handle: ArbiterHandle,
}

impl Thread {
    pub fn new(handle: ArbiterHandle) -> Thread {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        Thread {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            handle,
        }
    }
}

/// Where one section's change requests go.
#[derive(Clone)]
pub struct Route {
    pub thread: Thread,
    pub actor: Addr<SectionActor>,
}

/// What one thread's turn asked of one arbiter thread, by section, in the
/// order asked.
type ForThread = (Thread, Vec<(Addr<SectionActor>, Vec<ChangeRequest>)>);

#[derive(Default)]
struct Pending {
    by_thread: Vec<ForThread>,
    /// A hand-off is queued on this thread's runtime.
    scheduled: bool,
}

thread_local! {
    static PENDING: RefCell<Pending> = RefCell::default();
}

/// Sends `request` along `route` with the other requests this thread
/// makes in its current turn. Needs an actix (tokio `LocalSet`) runtime on
/// this thread, as every HTTP worker has.
pub fn send(route: &Route, request: ChangeRequest) {
    let schedule = PENDING.with(|p| {
        let mut p = p.borrow_mut();
        let sections = match p
            .by_thread
            .iter()
            .position(|(t, _)| t.id == route.thread.id)
        {
            Some(i) => &mut p.by_thread[i].1,
            None => {
                p.by_thread.push((route.thread.clone(), Vec::new()));
                &mut p.by_thread.last_mut().expect("just pushed").1
            }
        };
        match sections.iter_mut().find(|(to, _)| *to == route.actor) {
            Some((_, requests)) => requests.push(request),
            None => sections.push((route.actor.clone(), vec![request])),
        }
        !std::mem::replace(&mut p.scheduled, true)
    });
    if schedule {
        // Queued behind the tasks already ready on this thread: what they
        // ask joins this hand-off. Run when the task runs, or when it is
        // dropped unrun (a runtime shutting down), so no request is left
        // waiting in the list.
        let hand_off = HandOff;
        actix::spawn(async move { drop(hand_off) });
    }
}

struct HandOff;

impl Drop for HandOff {
    fn drop(&mut self) {
        hand_off();
    }
}

fn hand_off() {
    // Gone only while the thread itself ends: its requests' channels go
    // with it.
    let Ok(by_thread) = PENDING.try_with(|p| {
        let mut p = p.borrow_mut();
        p.scheduled = false;
        std::mem::take(&mut p.by_thread)
    }) else {
        return;
    };
    for (thread, sections) in by_thread {
        // A stopped arbiter drops the closure, a stopped actor its batch,
        // and with them every request's channel: each is answered
        // `Unavailable`, as it would be alone.
        thread.handle.spawn_fn(move || {
            for (actor, requests) in sections {
                actor.do_send(ChangeBatch(requests));
            }
        });
    }
}
