//! Renders an outbox entry into the email itself: subject, plain text and
//! HTML alternatives from the templates in `templates/mail/`, and for a
//! confirmation a QR code per ticket as an inline PNG and the show as a
//! calendar entry (`show.ics`, RFC 5545).
//!
//! Rendering is deterministic: the same entry always gives the same
//! Message-ID, Date and body, so a resend after a crash is a recognisable
//! duplicate of the first message, never a different email.

use std::time::{Duration, SystemTime};

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::Message;
use minijinja::{context, Environment};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::outbox::{MailEntry, MailKind};
use super::ticket::{Ticket, Tickets};
use crate::domain::{BookingRef, Claim, Lang, SectionKind};

/// The templates, as `templates/mail/<language>/<part>`: every language
/// has every part (a unit test checks).
const TEMPLATES: [(&str, &str); 12] = [
    (
        "en/confirmation.subject.txt",
        include_str!("../../templates/mail/en/confirmation.subject.txt"),
    ),
    (
        "en/confirmation.txt",
        include_str!("../../templates/mail/en/confirmation.txt"),
    ),
    (
        "en/confirmation.html",
        include_str!("../../templates/mail/en/confirmation.html"),
    ),
    (
        "en/cancellation.subject.txt",
        include_str!("../../templates/mail/en/cancellation.subject.txt"),
    ),
    (
        "en/cancellation.txt",
        include_str!("../../templates/mail/en/cancellation.txt"),
    ),
    (
        "en/cancellation.html",
        include_str!("../../templates/mail/en/cancellation.html"),
    ),
    (
        "ko/confirmation.subject.txt",
        include_str!("../../templates/mail/ko/confirmation.subject.txt"),
    ),
    (
        "ko/confirmation.txt",
        include_str!("../../templates/mail/ko/confirmation.txt"),
    ),
    (
        "ko/confirmation.html",
        include_str!("../../templates/mail/ko/confirmation.html"),
    ),
    (
        "ko/cancellation.subject.txt",
        include_str!("../../templates/mail/ko/cancellation.subject.txt"),
    ),
    (
        "ko/cancellation.txt",
        include_str!("../../templates/mail/ko/cancellation.txt"),
    ),
    (
        "ko/cancellation.html",
        include_str!("../../templates/mail/ko/cancellation.html"),
    ),
];

/// The name of template `part` in `lang`.
fn template(lang: Lang, part: &str) -> &'static str {
    TEMPLATES
        .iter()
        .map(|(name, _)| *name)
        .find(|name| {
            name.strip_prefix(lang.tag())
                .and_then(|n| n.strip_prefix('/'))
                == Some(part)
        })
        .unwrap_or("en/confirmation.txt")
}

/// The file name of a confirmation's calendar entry.
pub const CALENDAR_FILE: &str = "show.ics";
/// Content-ID of place `n`'s inline QR image: `ticket-qr-<n>`, from 1.
pub const QR_CID_PREFIX: &str = "ticket-qr-";
/// Pixels per QR module, and the quiet zone in modules.
const QR_SCALE: usize = 6;
const QR_QUIET: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the recipient address {0:?} is not one SMTP accepts")]
    Recipient(String),
    #[error("template {name}: {source}")]
    Template {
        name: &'static str,
        source: minijinja::Error,
    },
    #[error("the QR code cannot be drawn: {0}")]
    Qr(String),
    #[error("building the message: {0}")]
    Build(String),
}

pub struct Renderer {
    env: Environment<'static>,
    from: Mailbox,
    /// Right-hand side of every Message-ID.
    domain: String,
    tickets: Tickets,
}

#[derive(Serialize)]
struct Line {
    category: String,
    count: u32,
    unit_price: String,
    subtotal: String,
}

impl Renderer {
    pub fn new(from: Mailbox, tickets: Tickets) -> Renderer {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .expect("the built-in mail templates parse");
        }
        let domain = from.email.domain().to_owned();
        Renderer {
            env,
            from,
            domain,
            tickets,
        }
    }

    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    pub fn tickets_of(&self) -> &Tickets {
        &self.tickets
    }

    /// `<confirmation.demo.A.b42.1f2e3d4c5b6a7988@example.com>`: a pure
    /// function of the booking, so a resend carries the same id. The hash
    /// part keeps ids of different data directories apart without putting
    /// the booking's secret in a header.
    pub fn message_id(&self, entry: &MailEntry) -> String {
        let mut h = Sha256::new();
        h.update(entry.key.to_string().as_bytes());
        h.update(entry.booking.secret.to_le_bytes());
        let digest = h.finalize();
        let tag: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("<{}.{tag}@{}>", entry.key, self.domain)
    }

    /// The tickets a confirmation carries: one per place, each with its
    /// own QR code.
    pub fn tickets(&self, entry: &MailEntry) -> Vec<Ticket> {
        let (seats, qty) = seats_of(entry);
        let places = qty.unwrap_or(seats.len() as u32);
        self.tickets.of_booking(
            entry.key.event(),
            entry.key.section(),
            (entry.key.booking, entry.booking.secret),
            &seats,
            places,
        )
    }

    pub fn render(&self, entry: &MailEntry) -> Result<Message, RenderError> {
        let to: Mailbox = entry
            .booking
            .email()
            .parse()
            .map_err(|_| RenderError::Recipient(entry.booking.email().to_owned()))?;
        let def = &entry.def;
        let layout = &entry.layout;
        let (seats, qty) = seats_of(entry);
        let lang = entry.booking.lang();
        let lines = price_lines(entry);
        let total: u64 = lines.iter().map(|(_, n, p)| u64::from(*n) * p).sum();
        let booking_id = BookingRef::new(
            entry.key.event(),
            entry.key.section(),
            entry.key.booking,
            entry.booking.secret,
        )
        .to_string();
        let tickets = match entry.key.kind {
            MailKind::Confirmation => self.tickets(entry),
            MailKind::Cancellation => Vec::new(),
        };
        // (name, token, Content-ID, QR image and its width) per ticket.
        let mut codes = Vec::with_capacity(tickets.len());
        for t in &tickets {
            let token = self.tickets.sign(t);
            let (png, width) = qr_png(&token)?;
            let cid = format!("{QR_CID_PREFIX}{}", t.n.unwrap_or(0));
            // What a person reads: the seat by row and number, or the place.
            let name = match (&t.seat, t.n) {
                (Some(seat), _) => format!("{} ({seat})", seat_name_in(lang, seat)),
                (None, Some(n)) => place_name_in(lang, &layout.name, n),
                (None, None) => t.place(),
            };
            codes.push((name, token, cid, png, width));
        }
        let ctx = context! {
            event => context! {
                id => def.id, name => def.name, starts_at => def.starts_at,
                starts_local => show_time_in(lang, &def.starts_at, def.time_zone.as_deref()),
                venue => def.venue_name,
            },
            section => context! { id => layout.id, name => layout.name },
            seats => seats.iter().map(|id| context! { id => id, name => seat_name_in(lang, id) })
                .collect::<Vec<_>>(),
            quantity => qty.unwrap_or(0),
            lines => lines.iter().map(|(c, n, p)| Line {
                category: c.clone(),
                count: *n,
                unit_price: money(*p, &def.currency),
                subtotal: money(u64::from(*n) * p, &def.currency),
            }).collect::<Vec<_>>(),
            total => money(total, &def.currency),
            booking => context! {
                id => booking_id,
                number => format!("{}/{}/{}", def.id, layout.id, entry.key.booking),
                payment_ref => entry.booking.payment_ref(),
            },
            tickets => codes.iter().map(|(name, token, cid, _, width)| context! {
                name => name, token => token, cid => cid, width => width,
            }).collect::<Vec<_>>(),
        };
        let kind = entry.key.kind.as_str();
        let render = |part: &str| {
            let name = template(lang, part);
            self.env
                .get_template(name)
                .and_then(|t| t.render(&ctx))
                .map_err(|source| RenderError::Template { name, source })
        };
        let (subject, text, html) = match entry.key.kind {
            MailKind::Confirmation => (
                render("confirmation.subject.txt")?,
                render("confirmation.txt")?,
                render("confirmation.html")?,
            ),
            MailKind::Cancellation => (
                render("cancellation.subject.txt")?,
                render("cancellation.txt")?,
                render("cancellation.html")?,
            ),
        };
        let png = ContentType::parse("image/png").expect("a valid type");
        let html_part = codes.into_iter().fold(
            MultiPart::related().singlepart(SinglePart::html(html)),
            |part, (_, _, cid, image, _)| {
                part.singlepart(Attachment::new_inline(cid).body(image, png.clone()))
            },
        );
        let body = MultiPart::alternative()
            .singlepart(SinglePart::plain(text))
            .multipart(html_part);
        let body = match entry.key.kind {
            MailKind::Confirmation => {
                let ics = ContentType::parse("text/calendar; charset=utf-8; method=PUBLISH")
                    .expect("a valid type");
                let entry_ics = self.calendar(entry, &seats, qty);
                MultiPart::mixed()
                    .multipart(body)
                    .singlepart(Attachment::new(CALENDAR_FILE.to_owned()).body(entry_ics, ics))
            }
            MailKind::Cancellation => body,
        };
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject.trim())
            .message_id(Some(self.message_id(entry)))
            .date(SystemTime::UNIX_EPOCH + Duration::from_millis(entry.at_ms()))
            .header(BoxofficeMail(format!("{kind} {}", entry.key)))
            .multipart(body)
            .map_err(|e| RenderError::Build(e.to_string()))
    }

    /// The show as one calendar event. As deterministic as the rest of the
    /// email: `DTSTAMP` is the booking's confirmation, `UID` follows from
    /// the booking (so a resend, or a second import, updates one entry).
    /// Calendars are shared and synced: it names the booking by its
    /// number, never by its id (whose secret cancels it).
    fn calendar(&self, entry: &MailEntry, seats: &[String], qty: Option<u32>) -> String {
        let def = &entry.def;
        let utc = |ms: u64| {
            jiff::Timestamp::from_millisecond(i64::try_from(ms).unwrap_or(i64::MAX))
                .unwrap_or(jiff::Timestamp::MAX)
                .strftime("%Y%m%dT%H%M%SZ")
                .to_string()
        };
        let uid = format!(
            "{}.{}.b{:x}@{}",
            entry.key.event(),
            entry.key.section(),
            entry.key.booking,
            self.domain
        );
        let mut event = ics::Event::new(uid, utc(entry.booking.confirmed_at_ms));
        if let Ok(t) = def.starts_at.parse::<jiff::Timestamp>() {
            event.push(ics::properties::DtStart::new(
                t.strftime("%Y%m%dT%H%M%SZ").to_string(),
            ));
        }
        event.push(ics::properties::Summary::new(ics::escape_text(
            def.name.as_str(),
        )));
        event.push(ics::properties::Location::new(ics::escape_text(
            def.venue_name.as_str(),
        )));
        let places = match qty {
            Some(n) => format!("{n} standing"),
            None => seats
                .iter()
                .map(|s| seat_name(s))
                .collect::<Vec<_>>()
                .join(", "),
        };
        event.push(ics::properties::Description::new(ics::escape_text(
            format!(
                "{}: {places}\nBooking {}/{}/{}",
                entry.layout.name,
                entry.key.event(),
                entry.key.section(),
                entry.key.booking
            ),
        )));
        let mut calendar = ics::ICalendar::new("2.0", "-//boxoffice//tickets//EN");
        calendar.push(ics::properties::Method::new("PUBLISH"));
        calendar.add_event(event);
        calendar.to_string()
    }
}

/// `X-Boxoffice-Mail: confirmation demo.A.b42.confirmation`, so operators
/// can trace a message in a mail server's logs back to its outbox entry.
#[derive(Clone)]
struct BoxofficeMail(String);

impl lettre::message::header::Header for BoxofficeMail {
    fn name() -> lettre::message::header::HeaderName {
        lettre::message::header::HeaderName::new_from_ascii_str("X-Boxoffice-Mail")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(BoxofficeMail(s.to_owned()))
    }

    fn display(&self) -> lettre::message::header::HeaderValue {
        lettre::message::header::HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// A seat as a person reads it: `A/3/4` is "Row 3, Seat 4" (the section
/// is named beside it). An id of another shape shows as it is.
pub fn seat_name(id: &str) -> String {
    seat_name_in(Lang::En, id)
}

/// Likewise in `lang`: "Row 3, Seat 4", "3열 4번".
pub fn seat_name_in(lang: Lang, id: &str) -> String {
    let parts: Vec<&str> = id.split('/').collect();
    match (&parts[..], lang) {
        ([_, row, number], Lang::En) => format!("Row {row}, Seat {number}"),
        ([_, row, number], Lang::Ko) => format!("{row}열 {number}번"),
        _ => id.to_owned(),
    }
}

/// Standing place `n` of section `section` (its name) in `lang`.
fn place_name_in(lang: Lang, section: &str, n: u32) -> String {
    match lang {
        Lang::En => format!("{section}, place {n}"),
        Lang::Ko => format!("{section} {n}번"),
    }
}

fn seats_of(entry: &MailEntry) -> (Vec<String>, Option<u32>) {
    match (&entry.booking.claim, &entry.layout.kind) {
        (Claim::Seats(seats), SectionKind::Seated(map)) => {
            (seats.iter().map(|&s| map.seat_id(s)).collect(), None)
        }
        (claim, _) => (Vec::new(), Some(claim.count())),
    }
}

/// (category name, count, unit price) per category, in category order.
fn price_lines(entry: &MailEntry) -> Vec<(String, u32, u64)> {
    let cats = &entry.def.categories;
    let mut counts = vec![0u32; cats.len()];
    match (&entry.booking.claim, &entry.layout.kind) {
        (Claim::Seats(seats), SectionKind::Seated(map)) => {
            for &s in seats.iter() {
                counts[usize::from(map.category(s))] += 1;
            }
        }
        (Claim::Quantity(n), SectionKind::Standing { category, .. }) => {
            counts[usize::from(*category)] += n;
        }
        _ => {}
    }
    counts
        .iter()
        .enumerate()
        .filter(|(_, &n)| n > 0)
        .map(|(i, &n)| (cats[i].name.clone(), n, cats[i].price_minor))
        .collect()
}

/// ISO 4217 currencies without minor units; all others have two.
const ZERO_DECIMAL: &[&str] = &[
    "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
    "VUV", "XAF", "XOF", "XPF",
];

/// `150,000 KRW`, `1,234.50 EUR`.
/// The show's start as a person at the venue reads it: `Thu 24 Dec 2026,
/// 19:00 KST` in the venue's time zone (UTC without one). A start that
/// does not parse (it always does: `layout.rs` checked it) shows as given.
pub fn show_time(starts_at: &str, time_zone: Option<&str>) -> String {
    show_time_in(Lang::En, starts_at, time_zone)
}

/// The show's start as a person reading `lang` writes it: "Thu 24 Dec
/// 2026, 19:00 KST", "2026년 12월 24일 (목) 19:00 KST".
pub fn show_time_in(lang: Lang, starts_at: &str, time_zone: Option<&str>) -> String {
    let Ok(t) = starts_at.parse::<jiff::Timestamp>() else {
        return starts_at.to_owned();
    };
    let tz = time_zone
        .and_then(|name| jiff::tz::TimeZone::get(name).ok())
        .unwrap_or(jiff::tz::TimeZone::UTC);
    let z = t.to_zoned(tz);
    match lang {
        Lang::En => z.strftime("%a %-d %b %Y, %H:%M %Z").to_string(),
        Lang::Ko => {
            // Monday first, as jiff numbers them.
            let day = ["월", "화", "수", "목", "금", "토", "일"]
                [usize::from(z.weekday().to_monday_zero_offset().unsigned_abs())];
            format!(
                "{} ({day}) {}",
                z.strftime("%Y년 %-m월 %-d일"),
                z.strftime("%H:%M %Z")
            )
        }
    }
}

pub fn money(minor: u64, currency: &str) -> String {
    let group = |n: u64| {
        let digits = n.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    };
    if ZERO_DECIMAL.contains(&currency) {
        format!("{} {currency}", group(minor))
    } else {
        format!("{}.{:02} {currency}", group(minor / 100), minor % 100)
    }
}

/// The QR code of `token` as a 1-bit greyscale PNG, and its width in
/// pixels. One bit per pixel and fast compression keep this to tens of
/// microseconds: the mailer renders every email, under full sale load.
pub fn qr_png(token: &str) -> Result<(Vec<u8>, u32), RenderError> {
    // qrcode's `QrCode::new` scores all eight masks to pick the most
    // readable one, which is ~90% of rendering an email (a millisecond).
    // Any mask is valid QR; scanners read the checkerboard one fine.
    let qr = |e: qrcode::types::QrError| RenderError::Qr(e.to_string());
    let ec_level = qrcode::EcLevel::M;
    let bits = qrcode::bits::encode_auto(token.as_bytes(), ec_level).map_err(qr)?;
    let version = bits.version();
    let (data, ec) =
        qrcode::ec::construct_codewords(&bits.into_bytes(), version, ec_level).map_err(qr)?;
    let mut canvas = qrcode::canvas::Canvas::new(version, ec_level);
    canvas.draw_all_functional_patterns();
    canvas.draw_data(&data, &ec);
    canvas.apply_mask(qrcode::canvas::MaskPattern::Checkerboard);
    let colors = canvas.into_colors();
    let modules = version.width() as usize;
    let side = (modules + 2 * QR_QUIET) * QR_SCALE;
    let stride = side.div_ceil(8);
    // 1 = white. Build one packed row per module row, then repeat it.
    let mut pixels = Vec::with_capacity(stride * side);
    let mut row = vec![0u8; stride];
    for my in 0..modules + 2 * QR_QUIET {
        // A module at a time (not a pixel at a time: this loop was most of
        // rendering an email with a QR code per place).
        row.fill(0);
        let code_row = (QR_QUIET..modules + QR_QUIET)
            .contains(&my)
            .then(|| &colors[(my - QR_QUIET) * modules..][..modules]);
        for mx in 0..modules + 2 * QR_QUIET {
            let dark = code_row.is_some_and(|r| {
                (QR_QUIET..modules + QR_QUIET).contains(&mx)
                    && r[mx - QR_QUIET] == qrcode::Color::Dark
            });
            if !dark {
                for x in mx * QR_SCALE..(mx + 1) * QR_SCALE {
                    row[x / 8] |= 0x80 >> (x % 8);
                }
            }
        }
        for _ in 0..QR_SCALE {
            pixels.extend_from_slice(&row);
        }
    }
    let mut png = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut png, side as u32, side as u32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::One);
        enc.set_compression(png::Compression::Fast);
        let mut w = enc
            .write_header()
            .map_err(|e| RenderError::Qr(e.to_string()))?;
        w.write_image_data(&pixels)
            .map_err(|e| RenderError::Qr(e.to_string()))?;
    }
    Ok((png, side as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seats_read_as_rows_and_numbers() {
        assert_eq!(seat_name("A/3/4"), "Row 3, Seat 4");
        assert_eq!(seat_name("FLOOR"), "FLOOR");
        assert_eq!(seat_name_in(Lang::Ko, "A/3/4"), "3열 4번");
        assert_eq!(seat_name_in(Lang::Ko, "FLOOR"), "FLOOR");
        assert_eq!(place_name_in(Lang::En, "Floor", 2), "Floor, place 2");
        assert_eq!(place_name_in(Lang::Ko, "Floor", 2), "Floor 2번");
    }

    /// Every language has every part, each its own file.
    #[test]
    fn every_language_has_every_template() {
        let parts = [
            "confirmation.subject.txt",
            "confirmation.txt",
            "confirmation.html",
            "cancellation.subject.txt",
            "cancellation.txt",
            "cancellation.html",
        ];
        for lang in Lang::ALL {
            for part in parts {
                assert_eq!(template(lang, part), format!("{}/{part}", lang.tag()));
            }
        }
        let sources: std::collections::HashSet<&str> = TEMPLATES.iter().map(|t| t.1).collect();
        assert_eq!(sources.len(), TEMPLATES.len(), "no two templates the same");
    }

    /// In Korean, the date as Koreans write it, with the weekday.
    #[test]
    fn show_times_in_korean() {
        let at = "2026-12-24T10:00:00Z";
        assert_eq!(
            show_time_in(Lang::Ko, at, Some("Asia/Seoul")),
            "2026년 12월 24일 (목) 19:00 KST"
        );
        // Sunday, the last of jiff's Monday-first week.
        assert_eq!(
            show_time_in(Lang::Ko, "2026-12-27T01:30:00Z", Some("Asia/Seoul")),
            "2026년 12월 27일 (일) 10:30 KST"
        );
    }

    /// The venue's time, with its zone's abbreviation; UTC without one.
    #[test]
    fn show_times_are_the_venues() {
        let at = "2026-12-24T10:00:00Z";
        assert_eq!(
            show_time(at, Some("Asia/Seoul")),
            "Thu 24 Dec 2026, 19:00 KST"
        );
        assert_eq!(
            show_time(at, Some("Europe/Paris")),
            "Thu 24 Dec 2026, 11:00 CET"
        );
        assert_eq!(show_time(at, None), "Thu 24 Dec 2026, 10:00 UTC");
        assert_eq!(show_time("tomorrow", None), "tomorrow");
    }

    #[test]
    fn money_is_grouped_and_knows_zero_decimal_currencies() {
        assert_eq!(money(150_000, "KRW"), "150,000 KRW");
        assert_eq!(money(0, "KRW"), "0 KRW");
        assert_eq!(money(123_456_789, "EUR"), "1,234,567.89 EUR");
        assert_eq!(money(5, "USD"), "0.05 USD");
    }

    #[test]
    fn qr_png_is_a_square_one_bit_image() {
        let (png, side) = qr_png("BXT1.payload.mac").unwrap();
        let decoder = png::Decoder::new(&png[..]);
        let reader = decoder.read_info().unwrap();
        let info = reader.info();
        assert_eq!((info.width, info.height), (side, side));
        assert_eq!(info.color_type, png::ColorType::Grayscale);
        assert_eq!(info.bit_depth, png::BitDepth::One);
        // The quiet zone is white; the finder pattern's corner is dark.
        let mut decoder = png::Decoder::new(&png[..]);
        decoder.set_transformations(png::Transformations::EXPAND);
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        reader.next_frame(&mut buf).unwrap();
        let at = |x: usize, y: usize| buf[y * side as usize + x];
        assert_eq!(at(0, 0), 255);
        let corner = QR_QUIET * QR_SCALE;
        assert_eq!(at(corner, corner), 0);
        assert_eq!(at(corner - 1, corner - 1), 255);
    }
}
