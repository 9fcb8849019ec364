//! The fan's page in a real browser: Debian's Chromium, headless, driven
//! over WebDriver (its chromedriver) from the test, loopback only. The
//! test installs both from Debian's packages when they are missing.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Installs Chromium and its driver once, when missing.
fn installed() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        if std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists() {
            return;
        }
        eprintln!("installing Debian's chromium and chromium-driver for the browser tests");
        let ok = Command::new("sh")
            .args([
                "-c",
                "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver",
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
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let began = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                began.elapsed() < Duration::from_secs(20),
                "chromedriver never listened"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
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
        c.goto(&format!("{}/", s.base)).await.unwrap();
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
        c.wait()
            .for_element(Locator::Css("a[data-section='A']"))
            .await
            .unwrap();
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
        let ms = arena.attr("data-draw-ms").await.unwrap().unwrap();
        eprintln!("the arena's 15,000 seats drawn in {ms} ms (fetched, built, on screen)");
        let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
        std::fs::write(tmp.join("fan-arena.png"), c.screenshot().await.unwrap()).unwrap();
        c.find(Locator::Css("a[data-section='A']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let seat = c
            .wait()
            .for_element(Locator::Css("circle[data-seat='A/1/5']"))
            .await
            .unwrap();
        let seats = c.find_all(Locator::Css("circle[data-seat]")).await.unwrap();
        assert_eq!(seats.len(), 720, "every seat of section A is drawn");
        let label = seat.attr("aria-label").await.unwrap().unwrap();
        assert_eq!(
            label,
            "Section A, row 1, seat 5, R seat, ₩165,000, available"
        );
        assert_eq!(seat.attr("tabindex").await.unwrap().as_deref(), Some("0"));

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
        c.goto(&format!("{}/#/events/nope", s.base)).await.unwrap();
        let alert = c
            .wait()
            .for_element(Locator::Css("[role='alert']"))
            .await
            .unwrap();
        assert_eq!(alert.text().await.unwrap(), "There is no such event.");
        // An address that does not even decode.
        c.goto(&format!("{}/#/events/%E0%A4%A", s.base))
            .await
            .unwrap();
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
