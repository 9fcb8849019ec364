//! A real SMTP server over TCP for the mailer tests, with faults on
//! demand: refuse with any reply code, stall after the message data, drop
//! the connection after the data, or be down for a while.
//!
//! It speaks enough of RFC 5321 for lettre (EHLO, MAIL, RCPT, DATA with
//! dot-unstuffing, RSET, NOOP, QUIT) and keeps every message it accepted
//! with a final 250, byte for byte.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Accept every message.
    None,
    /// Answer the end of DATA with this code (4xx or 5xx) and keep nothing.
    Reply(u16),
    /// Read the message, then answer nothing until the fault changes; the
    /// stalled connection is then closed without an answer and the message
    /// is not kept (as a server that hung and was restarted).
    Stall,
    /// Keep the message, then close the connection without the final 250
    /// (the client cannot know it was delivered).
    DropAfterData,
}

#[derive(Default)]
struct State {
    fault: Option<(Fault, Option<usize>)>,
    /// Messages answered with 250, in order.
    messages: Vec<Vec<u8>>,
    /// Messages whose data was fully received, whatever the answer.
    data_received: usize,
    /// Connections currently stalled.
    stalled: usize,
    /// Connections accepted so far.
    connections: usize,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    down: AtomicBool,
    stop: AtomicBool,
}

pub struct SmtpSink {
    pub addr: SocketAddr,

    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        Self::start_niced(0)
    }

    /// A sink whose threads run at `nice` (benches: the sink stands in for
    /// a mail server on another machine, so it should take as little CPU
    /// as it can from the server under test).
    pub fn start_niced(nice: i32) -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            down: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let s = Arc::clone(&shared);
        let thread = std::thread::spawn(move || {
            set_nice(nice);
            accept_loop(listener, addr, s, nice)
        });
        SmtpSink {
            addr,
            shared,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Sets the fault for the next `times` messages (`None`: until changed).
    pub fn set_fault(&self, fault: Fault, times: Option<usize>) {
        let mut st = self.shared.state.lock().unwrap();
        st.fault = Some((fault, times));
        self.shared.changed.notify_all();
    }

    /// Stops listening (connections are refused) until `up`.
    pub fn down(&self) {
        self.shared.down.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(50));
    }

    pub fn up(&self) {
        self.shared.down.store(false, Ordering::SeqCst);
    }

    pub fn messages(&self) -> Vec<Vec<u8>> {
        self.shared.state.lock().unwrap().messages.clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.state.lock().unwrap().connections
    }

    /// Messages accepted so far.
    pub fn count(&self) -> usize {
        self.shared.state.lock().unwrap().messages.len()
    }

    pub fn data_received(&self) -> usize {
        self.shared.state.lock().unwrap().data_received
    }

    pub fn stalled(&self) -> usize {
        self.shared.state.lock().unwrap().stalled
    }

    /// Waits until `f` holds on the accepted messages, calling `tick`
    /// between looks (to move a test clock); panics after `within`.
    pub fn wait_for(
        &self,
        within: Duration,
        mut tick: impl FnMut(),
        f: impl Fn(&[Vec<u8>]) -> bool,
    ) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + within;
        loop {
            let m = self.messages();
            if f(&m) {
                return m;
            }
            if Instant::now() > deadline {
                panic!(
                    "the SMTP sink did not get the expected messages; it has {}",
                    m.len()
                );
            }
            tick();
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.changed.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn set_nice(nice: i32) {
    if nice != 0 {
        // SAFETY: affects only the calling thread's scheduling.
        unsafe {
            libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice);
        }
    }
}

fn accept_loop(listener: TcpListener, addr: SocketAddr, shared: Arc<Shared>, nice: i32) {
    let mut listener = Some(listener);
    while !shared.stop.load(Ordering::SeqCst) {
        if shared.down.load(Ordering::SeqCst) {
            listener = None; // closed: connections are refused
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let l = match &listener {
            Some(l) => l,
            None => match TcpListener::bind(addr) {
                Ok(l) => listener.insert(l),
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        l.set_nonblocking(true).unwrap();
        match l.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                shared.state.lock().unwrap().connections += 1;
                let s = Arc::clone(&shared);
                std::thread::spawn(move || {
                    set_nice(nice);
                    let _ = session(stream, s);
                });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// Takes one use of the current fault.
fn take_fault(st: &mut State) -> Fault {
    match &mut st.fault {
        None => Fault::None,
        Some((f, None)) => f.clone(),
        Some((f, Some(n))) => {
            let f = f.clone();
            *n -= 1;
            if *n == 0 {
                st.fault = None;
            }
            f
        }
    }
}

fn session(stream: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut out = stream.try_clone()?;
    let mut input = BufReader::new(stream);
    out.write_all(b"220 sink ESMTP ready\r\n")?;
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => out.write_all(b"250-sink greets you\r\n250 8BITMIME\r\n")?,
            "HELO" | "MAIL" | "RCPT" | "RSET" | "NOOP" => out.write_all(b"250 OK\r\n")?,
            "QUIT" => {
                out.write_all(b"221 bye\r\n")?;
                return Ok(());
            }
            "DATA" => {
                out.write_all(b"354 end with <CRLF>.<CRLF>\r\n")?;
                let mut data = Vec::new();
                loop {
                    let mut l = Vec::new();
                    if input.read_until(b'\n', &mut l)? == 0 {
                        return Ok(());
                    }
                    if l == b".\r\n" {
                        break;
                    }
                    if l.starts_with(b"..") {
                        l.remove(0);
                    }
                    data.extend_from_slice(&l);
                }
                let mut st = shared.state.lock().unwrap();
                st.data_received += 1;
                match take_fault(&mut st) {
                    Fault::None => {
                        st.messages.push(data);
                        drop(st);
                        out.write_all(b"250 OK queued\r\n")?;
                    }
                    Fault::Reply(code) => {
                        drop(st);
                        out.write_all(format!("{code} refused by the sink\r\n").as_bytes())?;
                    }
                    Fault::DropAfterData => {
                        st.messages.push(data);
                        return Ok(());
                    }
                    Fault::Stall => {
                        st.stalled += 1;
                        while matches!(st.fault, Some((Fault::Stall, _)))
                            && !shared.stop.load(Ordering::SeqCst)
                        {
                            st = shared.changed.wait(st).unwrap();
                        }
                        st.stalled -= 1;
                        return Ok(());
                    }
                }
            }
            _ => out.write_all(b"502 not implemented\r\n")?,
        }
    }
}
