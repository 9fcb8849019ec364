//! The fan's page in a real browser: Debian's Chromium, headless, driven
//! over WebDriver (its chromedriver) from the test, loopback only. The
//! test installs both from Debian's packages when they are missing.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use boxoffice::clock::{Clock, ManualClock};
use common::*;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Installs Chromium and its driver once, when missing.
fn installed() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let have = |p: &str| std::path::Path::new(p).exists();
        if have(CHROMIUM) && have(CHROMEDRIVER) && have("/usr/bin/curl") {
            return;
        }
        eprintln!("installing Debian's chromium, chromium-driver and curl for the browser tests");
        let ok = Command::new("sh")
            .args([
                "-c",
                "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver curl ca-certificates",
            ])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "the browser tests need {CHROMIUM} and {CHROMEDRIVER}: apt-get install chromium chromium-driver"
        );
    });
}

/// A headless Chromium behind its chromedriver; both end with it.
struct Browser {
    client: Option<Client>,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        installed();
        // A free port, then chromedriver on it: another test's server may
        // take the port in between, and chromedriver then exits. Only its
        // own answer on /status counts as started; otherwise, again.
        let (driver, port) = (0..5)
            .find_map(|_| {
                let port = std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port();
                let mut driver = Command::new(CHROMEDRIVER)
                    .arg(format!("--port={port}"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start chromedriver");
                let began = Instant::now();
                while began.elapsed() < Duration::from_secs(20) {
                    if driver.try_wait().unwrap().is_some() {
                        return None;
                    }
                    if chromedriver_ready(port) {
                        return Some((driver, port));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = driver.kill();
                let _ = driver.wait();
                None
            })
            .expect("chromedriver never listened");
        let profile = tempfile::tempdir().unwrap();
        // As the machine's notes say: no background networking (the
        // network is closed), a fresh profile, no sandbox as root.
        let caps = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                    "--lang=en-US",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!("an object")
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session");
        Browser {
            client: Some(client),
            driver,
            _profile: profile,
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("open")
    }

    async fn close(mut self) {
        if let Some(c) = self.client.take() {
            let _ = c.close().await;
        }
    }
}

/// Whether chromedriver itself answers on `port` (not whatever else may
/// listen there).
fn chromedriver_ready(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    if conn
        .write_all(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = conn.read_to_string(&mut answer);
    answer.contains("\"ready\":true")
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The element `css`, once there.
async fn wait_for(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait().for_element(Locator::Css(css)).await.unwrap()
}

async fn click(c: &Client, css: &str) {
    wait_for(c, css).await.click().await.unwrap();
}

/// Opens `path` (`#/...`) of the server's page.
async fn open(c: &Client, s: &TestServer, path: &str) {
    c.goto(&format!("{}/{path}", s.base)).await.unwrap();
}

/// Signs in on the demo with `button` (`#demo-fan`, a fan-club member;
/// `#demo-guest`, no member).
async fn sign_in_demo(c: &Client, s: &TestServer, button: &str) {
    open(c, s, "#/sign-in").await;
    click(c, button).await;
    wait_for(c, "#account .who").await;
}

/// Waits up to `within` for `f` to hold.
async fn eventually<F, Fut>(within: Duration, what: &str, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let began = Instant::now();
    loop {
        if f().await {
            return began.elapsed();
        }
        assert!(began.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The page lists the demo event; the event page its 21 sections; a
/// section page draws every one of its 720 seats, each named for a screen
/// reader; and a seat another fan holds through the API shows taken
/// within a second, without a reload.
#[test]
fn the_page_shows_the_event_and_a_section_live() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path());
    runtime().block_on(async {
        let b = Browser::start().await;
        let c = b.client();
        open(c, &s, "").await;
        let event = c
            .wait()
            .for_element(Locator::Css("a[data-event='demo']"))
            .await
            .unwrap();
        assert!(event
            .text()
            .await
            .unwrap()
            .contains("17,500 of 17,500 left"));
        event.click().await.unwrap();
        wait_for(c, "a[data-section='A']").await;
        let sections = c.find_all(Locator::Css("a[data-section]")).await.unwrap();
        assert_eq!(sections.len(), 21);
        // The venue drawn: every one of the arena's 15,000 seats.
        let arena = c
            .wait()
            .for_element(Locator::Css("svg.arena[data-draw-ms]"))
            .await
            .unwrap();
        let drawn = c.find_all(Locator::Css("svg.arena circle")).await.unwrap();
        assert_eq!(drawn.len(), 15_000);
        // The standing floor, which has no seats, where the layout puts it,
        // opening its section like the seats do; the stage beside it.
        let floor = c
            .find(Locator::Css("svg.arena g[data-section='FLOOR']"))
            .await
            .unwrap();
        let name = floor.find(Locator::Css("text")).await.unwrap();
        assert_eq!(name.text().await.unwrap(), "Floor (standing)");
        // Named with what is left on hover, like every section drawn.
        let title = floor.find(Locator::Css("title")).await.unwrap();
        assert_eq!(
            title.prop("textContent").await.unwrap().as_deref(),
            Some("Floor (standing): 2,500 of 2,500 left")
        );
        let rect = floor.find(Locator::Css("rect")).await.unwrap();
        assert_eq!(rect.attr("width").await.unwrap().as_deref(), Some("80"));
        let stage = c.find(Locator::Css("svg.arena g.stage")).await.unwrap();
        assert_eq!(stage.text().await.unwrap(), "Stage");
        // Each seated section named where it is drawn.
        let a = c
            .find(Locator::Css(
                "svg.arena g[data-section='A'] text.section-id",
            ))
            .await
            .unwrap();
        assert_eq!(a.text().await.unwrap(), "A");
        let ms = arena.attr("data-draw-ms").await.unwrap().unwrap();
        let slice = arena.attr("data-longest-slice-ms").await.unwrap().unwrap();
        eprintln!(
            "the arena's 15,000 seats drawn in {ms} ms (fetched, built, on screen), \
             the page blocked {slice} ms at most"
        );
        let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
        // The whole drawing in the picture (README's docs/fan-arena.png).
        c.execute(
            "document.querySelector('svg.arena').scrollIntoView({block: 'center'});",
            vec![],
        )
        .await
        .unwrap();
        std::fs::write(tmp.join("fan-arena.png"), c.screenshot().await.unwrap()).unwrap();
        click(c, "a[data-section='A']").await;
        let seat = c
            .wait()
            .for_element(Locator::Css("circle[data-seat='A/1/5']"))
            .await
            .unwrap();
        let seats = c.find_all(Locator::Css("circle[data-seat]")).await.unwrap();
        assert_eq!(seats.len(), 720, "every seat of section A is drawn");
        let drawn = c
            .wait()
            .for_element(Locator::Css("svg.seats[data-draw-ms]"))
            .await
            .unwrap();
        let ms = drawn.attr("data-draw-ms").await.unwrap().unwrap();
        eprintln!("section A's 720 seats drawn in {ms} ms (fetched, built, on screen)");
        let label = seat.attr("aria-label").await.unwrap().unwrap();
        assert_eq!(
            label,
            "Section A, row 1, seat 5, R seat, ₩165,000, available"
        );
        // Focusable; the map is one stop in the tab order (its first
        // seat), the arrow keys move between seats.
        assert_eq!(seat.attr("tabindex").await.unwrap().as_deref(), Some("-1"));
        let first = c
            .find(Locator::Css("circle[data-seat='A/1/1']"))
            .await
            .unwrap();
        assert_eq!(first.attr("tabindex").await.unwrap().as_deref(), Some("0"));

        // Another fan holds it: the page shows it taken, live.
        let token = s.token_for("fan-2");
        let auth = format!("Bearer {token}");
        let held = s.post_with(
            "/v1/events/demo/holds",
            &json!({"section": "A", "seats": ["A/1/5"]}),
            &[("Authorization", &auth)],
        );
        assert_eq!(held.status, 201, "{held:?}");
        let took = eventually(
            Duration::from_secs(1),
            "the hold shown on the page",
            || async { seat.attr("data-state").await.unwrap().as_deref() == Some("h") },
        )
        .await;
        eprintln!("the hold showed on the page {took:?} after its answer");
        let label = seat.attr("aria-label").await.unwrap().unwrap();
        assert!(label.ends_with(", held"), "{label}");
        // Past the colour's transition, for the picture.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let png = c.screenshot().await.unwrap();
        std::fs::write(tmp.join("fan-page.png"), png).unwrap();
        eprintln!("screenshots: {}/fan-arena.png, fan-page.png", tmp.display());
        b.close().await;
    });
}

/// The page and its assets come from this server alone, under a policy
/// that allows nothing else; an unknown event is a message, not a blank
/// page.
#[test]
fn the_page_loads_nothing_from_elsewhere_and_says_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path());
    for path in ["/", "/app.js", "/app.css"] {
        let r = s.get(path);
        assert_eq!(r.status, 200, "{path}");
    }
    let raw = agent().get(&format!("{}/", s.base)).call().unwrap();
    let policy = raw.header("Content-Security-Policy").unwrap().to_owned();
    assert!(policy.contains("default-src 'self'"), "{policy}");
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    let html = raw.into_string().unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no other origin"
    );
    runtime().block_on(async {
        let b = Browser::start().await;
        let c = b.client();
        open(c, &s, "#/events/nope").await;
        let alert = c
            .wait()
            .for_element(Locator::Css("[role='alert']"))
            .await
            .unwrap();
        assert_eq!(alert.text().await.unwrap(), "There is no such event.");
        // An address that does not even decode.
        open(c, &s, "#/events/%E0%A4%A").await;
        c.refresh().await.unwrap();
        let alert = c
            .wait()
            .for_element(Locator::Css("[role='alert']"))
            .await
            .unwrap();
        assert_eq!(
            alert.text().await.unwrap(),
            "This page has no such address."
        );
        b.close().await;
    });
}

/// What a phone downloads: each asset gzipped when the client takes it,
/// tagged, and not sent again to a client that has it (304, no body);
/// the icon served where browsers look for it.
#[test]
fn assets_are_gzipped_tagged_and_not_sent_twice() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path());
    let get = |path: &str, headers: &[(&str, &str)]| {
        let mut req = agent().get(&format!("{}{path}", s.base));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let r = req.call().unwrap();
        let head = |h: &str| r.header(h).map(str::to_owned);
        let (status, tag, encoding, cache, vary, kind) = (
            r.status(),
            head("ETag"),
            head("Content-Encoding"),
            head("Cache-Control"),
            head("Vary"),
            head("Content-Type"),
        );
        let mut body = Vec::new();
        r.into_reader().read_to_end(&mut body).unwrap();
        (status, tag, encoding, cache, vary, kind, body)
    };
    for path in ["/", "/app.js", "/app.css", "/favicon.svg", "/favicon.ico"] {
        let (status, tag, encoding, cache, vary, kind, plain) = get(path, &[]);
        assert_eq!((status, encoding), (200, None), "{path}");
        let tag = tag.unwrap_or_else(|| panic!("{path} has an ETag"));
        assert!(
            tag.starts_with('"') && tag.len() == 34,
            "{path}: a strong tag: {tag}"
        );
        assert_eq!(cache.as_deref(), Some("public, no-cache"), "{path}");
        assert_eq!(vary.as_deref(), Some("Accept-Encoding"), "{path}");
        assert!(!plain.is_empty());
        if path.starts_with("/favicon") {
            assert_eq!(kind.as_deref(), Some("image/svg+xml"), "{path}");
        }

        // A second visit: not modified, nothing sent.
        let (status, again, _, _, _, _, body) = get(path, &[("If-None-Match", &tag)]);
        assert_eq!(
            (status, again.as_deref(), body.len()),
            (304, Some(&*tag), 0),
            "{path}"
        );
        let (status, ..) = get(path, &[("If-None-Match", "\"something-else\"")]);
        assert_eq!(status, 200, "{path}: another tag gets the asset");

        // Gzipped for a client that takes it: its own tag, the same bytes.
        let (status, gz_tag, encoding, ..) = get(path, &[("Accept-Encoding", "br, gzip;q=0.8")]);
        assert_eq!((status, encoding.as_deref()), (200, Some("gzip")), "{path}");
        let gz_tag = gz_tag.unwrap();
        assert_ne!(gz_tag, tag, "{path}: two encodings, two tags");
        let (.., zipped) = get(path, &[("Accept-Encoding", "gzip")]);
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&zipped[..])
            .read_to_end(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, plain, "{path}");
        let (status, .., body) = get(
            path,
            &[("Accept-Encoding", "gzip"), ("If-None-Match", &gz_tag)],
        );
        assert_eq!((status, body.len()), (304, 0), "{path}");
        // Refused by weight: sent as it is.
        let (_, _, encoding, ..) = get(path, &[("Accept-Encoding", "gzip;q=0, identity")]);
        assert_eq!(encoding, None, "{path}");
    }
    // The script, the bulk of a visit, shrinks to under a third.
    let (.., plain) = get("/app.js", &[]);
    let (.., zipped) = get("/app.js", &[("Accept-Encoding", "gzip")]);
    assert!(
        zipped.len() * 3 < plain.len(),
        "{} of {}",
        zipped.len(),
        plain.len()
    );
}

/// A server on the real time of day (the page counts a hold's time down
/// on the browser's clock), with `tweak` applied to its settings.
fn server_now(
    dir: &std::path::Path,
    tweak: impl FnOnce(&mut boxoffice::config::ServeArgs),
) -> TestServer {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut a = args(dir);
    tweak(&mut a);
    TestServer::start_with(a, std::sync::Arc::new(ManualClock::new(now_ms)))
}

/// Whether the focused element matches `css`.
async fn focused_is(c: &Client, css: &str) -> bool {
    c.execute(
        "return document.activeElement !== null && document.activeElement.matches(arguments[0]);",
        vec![json!(css)],
    )
    .await
    .unwrap()
        == json!(true)
}

/// Presses Tab until the element `css` has the focus, as a fan without a
/// mouse would; fails after `max` presses.
async fn tab_to(c: &Client, css: &str, max: usize) {
    for _ in 0..max {
        if focused_is(c, css).await {
            return;
        }
        press(c, Key::Tab).await;
    }
    assert!(
        focused_is(c, css).await,
        "{css} not reached with {max} Tabs"
    );
}

/// Sends a key to the focused element.
async fn press(c: &Client, key: Key) {
    let k: char = key.into();
    c.active_element()
        .await
        .unwrap()
        .send_keys(&k.to_string())
        .await
        .unwrap();
}

async fn type_text(c: &Client, text: &str) {
    c.active_element()
        .await
        .unwrap()
        .send_keys(text)
        .await
        .unwrap();
}

/// The text of the first element `css`, once there (found again if the
/// page redrew it meanwhile).
async fn text_of(c: &Client, css: &str) -> String {
    let began = Instant::now();
    loop {
        let found = match c.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match found {
            Ok(text) => return text,
            Err(e) if began.elapsed() > Duration::from_secs(5) => panic!("{css}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// The fan's token the page signed in with (what the fan club's login
/// would hand another device).
async fn session_token(c: &Client) -> String {
    let token = c
        .execute("return sessionStorage.getItem('token')", vec![])
        .await
        .unwrap();
    token.as_str().expect("signed in").to_owned()
}

/// The view shows no "null" or "undefined": an optional part left out is
/// left out, never printed (the standing floor's page once read
/// "nullnull" where a seated section has its legend and map).
async fn shows_no_null(c: &Client, view: &str) {
    let text = c
        .find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for word in ["null", "undefined"] {
        assert!(!text.contains(word), "{view} shows {word:?}:\n{text}");
    }
}

/// The booking page's tickets: each QR image decoded, and the token it
/// encodes accepted by `boxoffice ticket verify` against the server's
/// ticket key. Returns what the tool said of each.
async fn tickets_verify(c: &Client, data_dir: &std::path::Path, places: usize) -> Vec<String> {
    use base64::Engine;
    let began = Instant::now();
    while text_of(c, "h1").await != "Your tickets" {
        if began.elapsed() > Duration::from_secs(5) {
            let said = c
                .execute("return [...document.querySelectorAll('[role=alert],[role=status]')].map((e) => e.textContent).join(' | ');", vec![])
                .await
                .unwrap();
            panic!("no tickets page; the page says: {said}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut said = Vec::new();
    for k in 0..places {
        let css = format!("ul.tickets li:nth-child({}) img", k + 1);
        let img = wait_for(c, &css).await;
        eventually(Duration::from_secs(5), "the QR image loaded", || async {
            img.attr("src").await.unwrap().is_some()
        })
        .await;
        let src = img.attr("src").await.unwrap().unwrap();
        let b64 = src
            .strip_prefix("data:image/png;base64,")
            .unwrap_or_else(|| panic!("a PNG data address: {src:.40}"));
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let token = qr_token(&png);
        let out = boxoffice()
            .args(["ticket", "verify", &token, "--data-dir"])
            .arg(data_dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        said.push(String::from_utf8_lossy(&out.stdout).trim().to_owned());
    }
    assert_eq!(
        c.find_all(Locator::Css("ul.tickets img"))
            .await
            .unwrap()
            .len(),
        places
    );
    said
}

/// A fan signs in on the demo, picks two seats and holds them (the
/// countdown shows), sees another fan's hold appear live, pays and books:
/// the booking shows a QR code per seat that decodes to a ticket
/// `boxoffice ticket verify` accepts. Then the fan gives the booking back.
#[test]
fn a_fan_holds_two_seats_pays_and_gets_its_tickets() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_now(dir.path(), |_| {});
    runtime().block_on(async {
        let b = Browser::start().await;
        let c = b.client();
        open(c, &s, "#/sign-in").await;
        click(c, "#demo-fan").await;
        let who = text_of(c, "#account .who").await;
        assert!(
            who.starts_with("Signed in as demo-") && who.ends_with("(fanclub)"),
            "{who}"
        );
        open(c, &s, "#/events/demo/sections/A").await;
        for id in ["A/1/1", "A/1/2"] {
            let seat = c
                .wait()
                .for_element(Locator::Css(&format!("circle[data-seat='{id}']")))
                .await
                .unwrap();
            seat.click().await.unwrap();
            assert_eq!(
                seat.attr("aria-checked").await.unwrap().as_deref(),
                Some("true")
            );
        }
        let hold = c.find(Locator::Css("#hold-chosen")).await.unwrap();
        assert_eq!(hold.text().await.unwrap(), "Hold 2 seats");
        hold.click().await.unwrap();
        let timer = text_of(c, "section.buy [role='timer']").await;
        // The demo's holds last 7 minutes.
        eventually(Duration::from_secs(3), "the hold's countdown", || async {
            let t = c
                .find(Locator::Css("section.buy [role='timer']"))
                .await
                .unwrap();
            t.text()
                .await
                .unwrap()
                .starts_with("Your hold ends in 6 min")
        })
        .await;
        eprintln!("countdown: {timer}");
        let mine = c
            .find(Locator::Css("circle[data-seat='A/1/1']"))
            .await
            .unwrap();
        let label = mine.attr("aria-label").await.unwrap().unwrap();
        assert!(label.ends_with("held by you"), "{label}");

        // A second fan holds a seat in view: shown taken within a second.
        let other = c
            .find(Locator::Css("circle[data-seat='A/1/9']"))
            .await
            .unwrap();
        let token = s.token_for("fan-2");
        let held = s.post_with(
            "/v1/events/demo/holds",
            &json!({"section": "A", "seats": ["A/1/9"]}),
            &[("Authorization", &format!("Bearer {token}"))],
        );
        assert_eq!(held.status, 201, "{held:?}");
        eventually(
            Duration::from_secs(1),
            "the other fan's hold shown",
            || async { other.attr("data-state").await.unwrap().as_deref() == Some("h") },
        )
        .await;
        // The signed-in fan's page streams with its token: on a fan's
        // place, none of the anonymous ones.
        let metrics = s.metrics();
        for line in [
            "boxoffice_seat_streams 1",
            "boxoffice_seat_streams_anonymous 0",
        ] {
            assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
        }
        let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
        std::fs::write(tmp.join("fan-hold.png"), c.screenshot().await.unwrap()).unwrap();

        c.find(Locator::Css("#email"))
            .await
            .unwrap()
            .send_keys("fan@example.com")
            .await
            .unwrap();
        click(c, "#pay").await;
        let said = tickets_verify(c, &s.data_dir, 2).await;
        assert!(
            said[0].ends_with("seat A/1/1 (place 1 of the booking)"),
            "{said:?}"
        );
        assert!(
            said[1].ends_with("seat A/1/2 (place 2 of the booking)"),
            "{said:?}"
        );
        std::fs::write(tmp.join("fan-tickets.png"), c.screenshot().await.unwrap()).unwrap();
        assert_eq!(&s.states("A")[..2], "ss", "booked");

        // The fan cannot come after all: asked twice (the first time it
        // keeps its tickets), then the booking is given back.
        click(c, "#cancel-booking").await;
        click(c, "#cancel-no").await;
        assert_eq!(text_of(c, "h1").await, "Your tickets");
        click(c, "#cancel-booking").await;
        let yes = wait_for(c, "#cancel-yes").await;
        assert_eq!(yes.text().await.unwrap(), "Yes, give up all 2 tickets");
        yes.click().await.unwrap();
        eventually(
            Duration::from_secs(5),
            "the booking shown cancelled",
            || async { text_of(c, "h1").await == "Booking cancelled" },
        )
        .await;
        assert!(c.find(Locator::Css("#cancel-booking")).await.is_err());
        shows_no_null(c, "the cancelled booking").await;
        click(c, "a[href='#/tickets']").await;
        assert_eq!(
            text_of(c, "ul.bookings li").await,
            "Fan-club presale: Seoul encore night · Lower bowl A: row 1, seat 1; row 1, seat 2 (cancelled)"
        );
        b.close().await;
    });
    // The server's too: both seats on sale again.
    let states = s.states("A");
    assert_eq!(&states[..2], "ff");
}

/// The standing floor, which has no seats, bought from the arena map: a
/// click on the floor opens its page, the fan asks for three places,
/// holds, pays, and gets a QR ticket per place that `boxoffice ticket
/// verify` accepts; the server counts them sold.
#[test]
fn a_fan_buys_standing_places_on_the_floor_from_the_map() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_now(dir.path(), |_| {});
    runtime().block_on(async {
        let b = Browser::start().await;
        let c = b.client();
        sign_in_demo(c, &s, "#demo-fan").await;
        open(c, &s, "#/events/demo").await;
        wait_for(c, "svg.arena[data-draw-ms]").await;
        click(c, "svg.arena g[data-section='FLOOR'] rect").await;
        eventually(Duration::from_secs(3), "the floor's page", || async {
            c.current_url()
                .await
                .unwrap()
                .as_str()
                .ends_with("#/events/demo/sections/FLOOR")
        })
        .await;
        // No seats to choose: a number of places.
        assert!(c.find(Locator::Css("svg.seats")).await.is_err());
        assert_eq!(text_of(c, "#buy-h").await, "Your places");
        let places = wait_for(c, "#best-n").await;
        places.select_by_value("3").await.unwrap();
        let hold = wait_for(c, "#hold-best").await;
        assert_eq!(hold.text().await.unwrap(), "Hold places");
        hold.click().await.unwrap();
        eventually(Duration::from_secs(5), "the hold of 3 places", || async {
            text_of(c, "section.buy")
                .await
                .contains("3 standing places")
        })
        .await;
        shows_no_null(c, "the floor's page").await;
        let pay = wait_for(c, "#pay").await;
        // VIP standing, 198,000 a place.
        assert_eq!(pay.text().await.unwrap(), "Pay ₩594,000 (demo) and book");
        c.find(Locator::Css("#email"))
            .await
            .unwrap()
            .send_keys("floor@example.com")
            .await
            .unwrap();
        pay.click().await.unwrap();
        let said = tickets_verify(c, &s.data_dir, 3).await;
        // Each ticket named for a person at the door: the section once,
        // then its place.
        let names: Vec<String> = {
            let mut v = Vec::new();
            for h in c.find_all(Locator::Css("ul.tickets h3")).await.unwrap() {
                v.push(h.text().await.unwrap());
            }
            v
        };
        assert_eq!(
            names,
            [
                "Floor (standing), place 1",
                "Floor (standing), place 2",
                "Floor (standing), place 3"
            ]
        );
        assert!(text_of(c, "main")
            .await
            .contains("its places go on sale again"));
        // "My tickets" lists the booking by what it is.
        click(c, "a[href='#/tickets']").await;
        assert_eq!(
            text_of(c, "ul.bookings li").await,
            "Fan-club presale: Seoul encore night · Floor (standing): 3 standing places"
        );
        click(c, "ul.bookings li a").await;
        wait_for(c, "ul.tickets").await;
        for (k, line) in said.iter().enumerate() {
            assert!(
                line.contains("section FLOOR")
                    && line.ends_with(&format!("standing place {} of the booking", k + 1)),
                "{said:?}"
            );
        }
        // On another device (a browser of its own, nothing kept from this
        // one), the same fan signed in finds the booking and its tickets.
        let token = session_token(c).await;
        b.close().await;
        let other = Browser::start().await;
        let c = other.client();
        open(c, &s, "#/tickets").await;
        assert_eq!(text_of(c, "main p").await, "Sign in to see your tickets.");
        open(c, &s, &format!("#token={token}&to=/tickets")).await;
        click(c, "#link-accept").await;
        assert_eq!(
            text_of(c, "ul.bookings li").await,
            "Fan-club presale: Seoul encore night · Floor (standing): 3 standing places"
        );
        let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
        std::fs::write(
            tmp.join("fan-my-tickets.png"),
            c.screenshot().await.unwrap(),
        )
        .unwrap();
        click(c, "ul.bookings li a").await;
        assert_eq!(tickets_verify(c, &s.data_dir, 3).await, said);
        other.close().await;
    });
    let floor = &s.get("/v1/events/demo").body["sections"][0];
    assert_eq!(floor["id"], "FLOOR");
    assert_eq!(
        (floor["sold"].as_u64(), floor["free"].as_u64()),
        (Some(3), Some(2497))
    );
}

/// A hold made in one browser, whose tab then closed, is found again on
/// another device signed in as the same fan: its seats shown as the
/// fan's, and paid for there.
#[test]
fn a_hold_made_on_one_device_is_booked_on_another() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_now(dir.path(), |_| {});
    runtime().block_on(async {
        let b = Browser::start().await;
        let c = b.client();
        sign_in_demo(c, &s, "#demo-fan").await;
        open(c, &s, "#/events/demo/sections/A").await;
        for id in ["A/1/1", "A/1/2"] {
            click(c, &format!("circle[data-seat='{id}']")).await;
        }
        click(c, "#hold-chosen").await;
        wait_for(c, "#pay").await;
        let token = session_token(c).await;
        b.close().await;

        let other = Browser::start().await;
        let c = other.client();
        open(c, &s, &format!("#token={token}&to=/events/demo/sections/A")).await;
        click(c, "#link-accept").await;
        wait_for(c, "#pay").await;
        assert_eq!(text_of(c, "#buy-h").await, "Your hold");
        assert_eq!(
            text_of(c, "[role='status']:not(:empty)").await,
            "You already hold row 1, seat 1; row 1, seat 2: book or release it."
        );
        let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
        std::fs::write(
            tmp.join("fan-hold-found.png"),
            c.screenshot().await.unwrap(),
        )
        .unwrap();
        for id in ["A/1/1", "A/1/2"] {
            let seat = wait_for(c, &format!("circle[data-seat='{id}']")).await;
            let label = seat.attr("aria-label").await.unwrap().unwrap();
            assert!(label.ends_with("held by you"), "{label}");
        }
        c.find(Locator::Css("#email"))
            .await
            .unwrap()
            .send_keys("fan@example.com")
            .await
            .unwrap();
        click(c, "#pay").await;
        let said = tickets_verify(c, &s.data_dir, 2).await;
        assert!(
            said[0].ends_with("seat A/1/1 (place 1 of the booking)"),
            "{said:?}"
        );
        other.close().await;
    });
    assert_eq!(&s.states("A")[..2], "ss", "booked");
}

/// A sign-in link carries whatever token its sender put in it (its own,
/// to have a victim buy for it): the page names the link's fan and the fan
/// signed in now, and switches only when asked; a first sign-in from a
/// link names its fan before anything can be held or bought.
#[test]
fn a_sign_in_link_names_its_fan_and_asks_first() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_now(dir.path(), |_| {});
    let sender = s.token_for("fan-sender");
    let link = format!("#token={sender}&to=/events/demo/sections/A");
    runtime().block_on(async {
        let b = Browser::start().await;
        let c = b.client();
        sign_in_demo(c, &s, "#demo-fan").await;
        let me = text_of(c, "#account .who").await;
        assert!(me.starts_with("Signed in as demo-"), "{me}");
        open(c, &s, &link).await;
        wait_for(c, "#link-accept").await;
        assert_eq!(text_of(c, "main h1").await, "Switch to another fan?");
        let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
        std::fs::write(
            tmp.join("fan-sign-in-link.png"),
            c.screenshot().await.unwrap(),
        )
        .unwrap();
        let said = text_of(c, "main p").await;
        let mine = me.trim_start_matches("Signed in as ");
        assert_eq!(
            said,
            format!("This link signs in as fan-sender (fanclub). You are signed in as {mine}.")
        );
        // Nothing switched yet, and the token is out of the address.
        assert_eq!(text_of(c, "#account .who").await, me);
        let url = c.current_url().await.unwrap();
        assert_eq!(url.fragment(), Some("/sign-in/link"));
        assert_ne!(session_token(c).await, sender);
        assert_eq!(
            text_of(c, "#link-decline").await,
            format!("Stay signed in as {}", mine.trim_end_matches(" (fanclub)"))
        );
        click(c, "#link-decline").await;
        wait_for(c, "circle[data-seat='A/1/1']").await;
        assert_eq!(text_of(c, "#account .who").await, me);
        // The same link again, and this time the fan says yes.
        open(c, &s, &link).await;
        assert_eq!(text_of(c, "#link-accept").await, "Switch to fan-sender");
        click(c, "#link-accept").await;
        wait_for(c, "circle[data-seat='A/1/1']").await;
        assert_eq!(
            text_of(c, "#account .who").await,
            "Signed in as fan-sender (fanclub)"
        );
        assert_eq!(session_token(c).await, sender);
        b.close().await;

        // A browser signed in as nobody: the link names its fan first.
        let other = Browser::start().await;
        let c = other.client();
        open(c, &s, &format!("#token={sender}&to=/tickets")).await;
        wait_for(c, "#link-accept").await;
        assert_eq!(
            text_of(c, "main p").await,
            "This link signs you in as fan-sender (fanclub)."
        );
        assert_eq!(text_of(c, "#account a").await, "Sign in");
        click(c, "#link-decline").await;
        wait_for(c, "ul.events").await;
        assert_eq!(text_of(c, "#account a").await, "Sign in");
        other.close().await;
    });
}

/// The same with the keyboard alone: Tab to the demo sign-in, into the
/// map, space to choose, an arrow to the next seat, Tab to hold, type the
/// email, Enter to pay.
#[test]
fn the_whole_flow_works_with_the_keyboard_alone() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_now(dir.path(), |_| {});
    runtime().block_on(async {
        let b = Browser::start().await;
        let c = b.client();
        open(c, &s, "#/events/demo/sections/B").await;
        wait_for(c, "circle[data-seat]").await;
        tab_to(c, "#account a[href='#/sign-in']", 10).await;
        press(c, Key::Enter).await;
        wait_for(c, "#demo-fan").await;
        tab_to(c, "#demo-fan", 10).await;
        press(c, Key::Enter).await;
        // Back where the fan was, signed in.
        wait_for(c, "#account .who").await;
        wait_for(c, "circle[data-seat]").await;
        let first = c
            .find(Locator::Css("circle[tabindex='0']"))
            .await
            .unwrap()
            .attr("data-seat")
            .await
            .unwrap()
            .unwrap();
        tab_to(c, "circle[data-seat]", 10).await;
        press(c, Key::Space).await;
        // The arrows move on the map as drawn (sections face the stage
        // at every angle): to whichever side has a seat.
        for key in [Key::Right, Key::Left, Key::Down, Key::Up] {
            press(c, key).await;
            if !focused_is(c, &format!("circle[data-seat='{first}']")).await {
                break;
            }
        }
        assert!(!focused_is(c, &format!("circle[data-seat='{first}']")).await);
        press(c, Key::Space).await;
        let chosen = c
            .find_all(Locator::Css("circle[aria-checked='true']"))
            .await
            .unwrap();
        assert_eq!(chosen.len(), 2);
        let mut seats = Vec::new();
        for seat in &chosen {
            seats.push(seat.attr("data-seat").await.unwrap().unwrap());
        }
        tab_to(c, "#hold-chosen", 10).await;
        press(c, Key::Enter).await;
        // The hold moves the focus to the email field.
        eventually(
            Duration::from_secs(5),
            "the email field focused",
            || async { focused_is(c, "#email").await },
        )
        .await;
        type_text(c, "keys@example.com").await;
        tab_to(c, "#pay", 5).await;
        press(c, Key::Enter).await;
        let said = tickets_verify(c, &s.data_dir, 2).await;
        assert!(
            said[0].ends_with(&format!("seat {first} (place 1 of the booking)")),
            "{said:?}"
        );
        b.close().await;
    });
}

/// What the page says when the API refuses: a fan who is no member in
/// the presale, a fan at the event's ticket limit, a seat another fan
/// took between the choice and the hold.
#[test]
fn refusals_are_shown_as_sentences() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_now(dir.path(), |a| a.demo_tickets_per_fan_max = 2);
    runtime().block_on(async {
        let b = Browser::start().await;
        let c = b.client();
        let alert = || async { text_of(c, "section.buy ~ [role='alert']:not(:empty)").await };

        sign_in_demo(c, &s, "#demo-guest").await;
        open(c, &s, "#/events/demo/sections/A").await;
        click(c, "#hold-best").await;
        let said = alert().await;
        assert!(
            said.starts_with("This part of the sale is for fan-club members. It opens to you "),
            "{said}"
        );

        // A member, limited to two tickets, asks for three.
        click(c, "#account button").await;
        sign_in_demo(c, &s, "#demo-fan").await;
        open(c, &s, "#/events/demo/sections/A").await;
        let best = wait_for(c, "#best-n").await;
        best.select_by_value("3").await.unwrap();
        click(c, "#hold-best").await;
        assert_eq!(
            alert().await,
            "You have reached this event's limit of 2 tickets per fan (you have 0)."
        );

        // A seat taken between the choice and the hold: the stream takes
        // it out of the choice and says so.
        let seat = c
            .find(Locator::Css("circle[data-seat='A/2/3']"))
            .await
            .unwrap();
        seat.click().await.unwrap();
        let token = s.token_for("fan-2");
        let held = s.post_with(
            "/v1/events/demo/holds",
            &json!({"section": "A", "seats": ["A/2/3"]}),
            &[("Authorization", &format!("Bearer {token}"))],
        );
        assert_eq!(held.status, 201, "{held:?}");
        eventually(
            Duration::from_secs(2),
            "the taken seat out of the choice",
            || async { seat.attr("aria-checked").await.unwrap().as_deref() == Some("false") },
        )
        .await;
        assert_eq!(
            alert().await,
            "Another fan just took seat row 2, seat 3: it is no longer in your choice."
        );

        // "My tickets" while the server sheds the list's requests: the
        // event named, the reason in a sentence, the view still there.
        c.execute(
            r#"const real = window.fetch;
               window.fetch = (url, init) => String(url).endsWith('/me/bookings')
                 ? Promise.resolve(new Response(JSON.stringify({type: 'urn:boxoffice:problem:overloaded', title: 'Too busy', status: 503}),
                     {status: 503, headers: {'Content-Type': 'application/problem+json'}}))
                 : real(url, init);"#,
            vec![],
        )
        .await
        .unwrap();
        c.execute("location.hash = '#/tickets'", vec![]).await.unwrap();
        assert_eq!(
            text_of(c, "main [role='alert']").await,
            "Your bookings of Fan-club presale: Seoul encore night could not be loaded: So many fans are here right now that the server asked us to wait. Try again in a moment."
        );
        assert_eq!(text_of(c, "h1").await, "My tickets");
        // A token the server no longer takes: signed out, and asked once
        // to sign in again.
        c.execute(
            r#"const real = window.fetch;
               window.fetch = (url, init) => String(url).endsWith('/me/bookings')
                 ? Promise.resolve(new Response(JSON.stringify({type: 'urn:boxoffice:problem:invalid-token', title: 'Invalid token', status: 401}),
                     {status: 401, headers: {'Content-Type': 'application/problem+json'}}))
                 : real(url, init);
               location.hash = '#/';"#,
            vec![],
        )
        .await
        .unwrap();
        wait_for(c, "a[data-event]").await;
        c.execute("location.hash = '#/tickets'", vec![]).await.unwrap();
        assert_eq!(text_of(c, "main p").await, "Sign in to see your tickets.");
        assert!(c.find(Locator::Css("main [role='alert']")).await.is_err());
        b.close().await;
    });
}

/// axe-core, pinned and checked against npm's published digest, fetched
/// once into the target directory.
fn axe_source() -> String {
    use sha2::{Digest, Sha512};
    installed();
    const VERSION: &str = "4.14.1";
    const SHA512: &str =
        "FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ==";
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let tgz = dir.join(format!("axe-core-{VERSION}.tgz"));
    let good = |bytes: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(Sha512::digest(bytes)) == SHA512
    };
    if !std::fs::read(&tgz).is_ok_and(|b| good(&b)) {
        let url = format!("https://registry.npmjs.org/axe-core/-/axe-core-{VERSION}.tgz");
        // curl, for the machine's own certificate store (a proxy's CA).
        let got = Command::new("curl")
            .args(["-fsSL", "--retry", "3", &url])
            .output()
            .expect("curl, to fetch axe-core from npm's registry");
        assert!(
            got.status.success(),
            "{url}: {}",
            String::from_utf8_lossy(&got.stderr)
        );
        let bytes = got.stdout;
        assert!(
            good(&bytes),
            "{url} is not the published axe-core {VERSION}"
        );
        std::fs::write(&tgz, &bytes).unwrap();
    }
    let out = Command::new("tar")
        .args(["-xzOf"])
        .arg(&tgz)
        .arg("package/axe.min.js")
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// axe's serious and critical violations on the page as it is now.
async fn axe_violations(c: &Client, axe: &str) -> Vec<Value> {
    c.execute(axe, vec![]).await.unwrap();
    let found = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { resultTypes: ['violations'] })
               .then((r) => done(r.violations.map((v) => ({
                 id: v.id, impact: v.impact, help: v.help,
                 nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }))))
               .catch((e) => done([{ id: 'axe-failed', impact: 'critical', help: String(e) }]));",
            vec![],
        )
        .await
        .unwrap();
    found
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .cloned()
        .collect()
}

/// axe-core finds no serious or critical violation on any of the page's
/// views: events, an event, sign-in, a section with a hold, the tickets,
/// cancelling them.
#[test]
fn axe_finds_nothing_serious() {
    let axe = axe_source();
    let dir = tempfile::tempdir().unwrap();
    let s = server_now(dir.path(), |_| {});
    runtime().block_on(async {
        let b = Browser::start().await;
        let c = b.client();
        let mut found = Vec::new();
        let mut check = |view: &str, v: Vec<Value>| {
            for x in v {
                found.push(format!("{view}: {x}"));
            }
        };
        open(c, &s, "").await;
        wait_for(c, "a[data-event]").await;
        check("events", axe_violations(c, &axe).await);
        open(c, &s, "#/events/demo").await;
        wait_for(c, "svg.arena[data-draw-ms]").await;
        check("event", axe_violations(c, &axe).await);
        sign_in_demo(c, &s, "#demo-fan").await;
        open(c, &s, "#/events/demo/sections/C").await;
        wait_for(c, "#hold-best").await;
        click(c, "details summary").await;
        check("section", axe_violations(c, &axe).await);
        click(c, "#hold-best").await;
        wait_for(c, "#email").await;
        check("hold", axe_violations(c, &axe).await);
        c.find(Locator::Css("#email"))
            .await
            .unwrap()
            .send_keys("a@example.com")
            .await
            .unwrap();
        click(c, "#pay").await;
        tickets_verify(c, &s.data_dir, 1).await;
        check("tickets", axe_violations(c, &axe).await);
        click(c, "#cancel-booking").await;
        wait_for(c, "#cancel-yes").await;
        check("cancel", axe_violations(c, &axe).await);
        click(c, "#cancel-yes").await;
        eventually(Duration::from_secs(5), "the booking cancelled", || async {
            text_of(c, "h1").await == "Booking cancelled"
        })
        .await;
        check("cancelled", axe_violations(c, &axe).await);
        open(c, &s, "#/tickets").await;
        wait_for(c, "ul.bookings li").await;
        check("my tickets", axe_violations(c, &axe).await);
        open(c, &s, "#/events/demo/sections/FLOOR").await;
        wait_for(c, "#hold-best").await;
        check("standing section", axe_violations(c, &axe).await);
        open(c, &s, "#/sign-in").await;
        wait_for(c, "#token").await;
        check("sign-in", axe_violations(c, &axe).await);
        b.close().await;
        assert!(found.is_empty(), "{found:#?}");
    });
}

/// With the sale behind a waiting room: the fan joins from the section's
/// page, sees its place and the fans ahead, and once admitted (the
/// server's clock moved on, a second a turn) holds with its admission.
#[test]
fn the_waiting_room_lets_the_fan_in_then_it_holds() {
    const SEC: u64 = 1000;
    let dir = tempfile::tempdir().unwrap();
    let s = server_now(dir.path(), |_| {});
    let t0 = s.clock.now_ms();
    let opens = boxoffice::clock::rfc3339(t0 + 10 * SEC);
    let put = s.raw(
        "PUT",
        "/v1/events/demo/waiting-room",
        Some(
            json!({"enabled": true, "opens_at": opens, "rate_per_sec": 1,
                   "admission_ttl_secs": 600})
            .to_string(),
        ),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &format!("Bearer {ADMIN_TOKEN}")),
        ],
    );
    assert_eq!(put.status, 200, "{put:?}");
    // Three fans queue before the opening; at the opening they are
    // shuffled, and the fan of the page, joining after, is fourth.
    for fan in ["early-1", "early-2", "early-3"] {
        let token = s.token_for(fan);
        let r = s.raw(
            "POST",
            "/v1/events/demo/queue",
            None,
            &[("Authorization", &format!("Bearer {token}"))],
        );
        assert_eq!(r.status, 200, "{r:?}");
    }
    s.clock.advance_ms(10 * SEC);
    runtime().block_on(async {
        let b = Browser::start().await;
        let c = b.client();
        sign_in_demo(c, &s, "#demo-fan").await;
        open(c, &s, "#/events/demo/sections/A").await;
        click(c, "#join").await;
        let waiting = text_of(c, ".standing[data-state='waiting']").await;
        assert!(
            waiting.starts_with("You are number 4 in the queue: "),
            "{waiting}"
        );
        assert!(
            c.find(Locator::Css("#hold-best")).await.is_err(),
            "no holding while waiting"
        );
        // A second a turn: the fan's turn comes within four.
        let mut admitted = false;
        for _ in 0..8 {
            s.clock.advance_ms(SEC);
            let began = Instant::now();
            while began.elapsed() < Duration::from_secs(3) {
                if c.find(Locator::Css("#hold-best")).await.is_ok() {
                    admitted = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if admitted {
                break;
            }
        }
        assert!(admitted, "the page never let the fan in");
        let said = text_of(c, "[role='status']:not(:empty)").await;
        assert!(
            said.starts_with("It is your turn! Hold your seats before "),
            "{said}"
        );
        click(c, "#hold-best").await;
        wait_for(c, "#email").await;
        b.close().await;
    });
}
