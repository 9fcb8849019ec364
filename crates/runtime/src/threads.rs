//! The calling thread's name and priority, as the operating system sees
//! them: what `top -H`, `perf` and `/proc/<pid>/task` show for each thread;
//! and what a panic on any thread does to the process.

/// Names the calling thread (Linux keeps the first 15 bytes). actix names
/// every arbiter `actix-rt|system:…`, which tells the HTTP workers and the
/// section arbiters apart nowhere a person or a profile looks; each of
/// our own arbiters names itself with this once it runs. Best effort: a
/// name is for people, so a failure is ignored.
pub fn name_current(name: &str) {
    #[cfg(target_os = "linux")]
    {
        let mut bytes: Vec<u8> = name.bytes().filter(|b| *b != 0).take(15).collect();
        bytes.push(0);
        // SAFETY: `bytes` is a NUL-terminated buffer that outlives the
        // call; PR_SET_NAME copies at most 16 bytes from it and only
        // renames the calling thread.
        unsafe {
            libc::prctl(libc::PR_SET_NAME, bytes.as_ptr() as libc::c_ulong, 0, 0, 0);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = name;
}

/// Lowers the calling thread's scheduling priority (Linux: a thread id
/// given to `setpriority` names that thread alone). Best effort: a failure
/// costs only priority, so it is logged, not fatal.
pub fn lower_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and setpriority take no pointers and only affect
        // the scheduling of the calling thread.
        let rc = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice)
        };
        if rc != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "cannot lower a thread's priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// Makes a panic on any thread end the process at once (SIGABRT), after
/// the usual report. A panic means an invariant the code relies on broke:
/// the memory of the thread that panicked (a section, the flusher, the
/// mailer) can no longer be trusted, and a process that went on would
/// answer 503 from a dead section forever, or exit 0 with its journal
/// half-closed. The journal can be trusted: it holds every acknowledged
/// change, so a restart (Kubernetes restarts the pod) is the recovery,
/// and clients retry with their Idempotency-Key. Only the binary does
/// this; a process embedding `Application` (the tests) keeps Rust's
/// unwinding.
pub fn abort_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        tracing::error!(%info, "a thread panicked: aborting (the journal holds every acknowledged change)");
        std::process::abort();
    }));
}

#[cfg(test)]
mod tests {
    /// The name as the kernel keeps it for this thread.
    #[cfg(target_os = "linux")]
    fn current_name() -> String {
        // SAFETY: gettid takes nothing and names the calling thread.
        let tid = unsafe { libc::gettid() };
        std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
            .unwrap()
            .trim_end()
            .to_owned()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_name_is_kept_to_fifteen_bytes() {
        std::thread::spawn(|| {
            super::name_current("section-3");
            assert_eq!(current_name(), "section-3");
            super::name_current("a-name-longer-than-fifteen");
            assert_eq!(current_name(), "a-name-longer-t");
            super::name_current("nul\0inside");
            assert_eq!(current_name(), "nulinside");
        })
        .join()
        .unwrap();
    }
}
