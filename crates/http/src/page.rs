//! The fan's page, compiled into the binary: `GET /` and its script, style
//! sheet and icon (`page/`). No CDN, no external fonts: it works on a
//! machine with no internet, and everything it reads is the REST API.
//!
//! Each asset goes out with a content security policy that lets the page
//! load and connect to this server only, run no inline script and take
//! no inline style (the script sets styles through the CSSOM), and be
//! framed by nobody.
//!
//! Fans load it on phones at the opening minute: each asset is gzipped
//! once (at its first request) and sent so to a client that accepts it,
//! and carries a strong `ETag` (a hash of the bytes sent), so that a
//! second visit revalidates and gets `304 Not Modified`, no body. Caches
//! may keep them (`public`) but must ask first (`no-cache`): they change
//! with the binary, under the same names.

use std::io::Write;
use std::sync::OnceLock;

use actix_web::http::header::{self, CacheControl, CacheDirective, EntityTag, Header, IfNoneMatch};
use actix_web::{HttpRequest, HttpResponse};

const INDEX: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/app.js");
const STYLE: &str = include_str!("page/app.css");
const ICON: &str = include_str!("page/favicon.svg");

/// What the page may load and do.
const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
    form-action 'self'";

/// One asset as it goes out: its bytes as they are and gzipped, each with
/// its own strong tag (two encodings are two representations).
struct Asset {
    content_type: &'static str,
    plain: &'static [u8],
    plain_tag: EntityTag,
    gzip: Vec<u8>,
    gzip_tag: EntityTag,
}

/// A strong tag: the first 16 bytes of the SHA-256 of `bytes`, in hex.
fn tag_of(bytes: &[u8]) -> EntityTag {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(bytes);
    EntityTag::new_strong(digest[..16].iter().map(|b| format!("{b:02x}")).collect())
}

impl Asset {
    fn new(content_type: &'static str, body: &'static str) -> Asset {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        // Writing to a Vec cannot fail.
        let gzip = gz
            .write_all(body.as_bytes())
            .and_then(|()| gz.finish())
            .unwrap_or_default();
        Asset {
            content_type,
            plain: body.as_bytes(),
            plain_tag: tag_of(body.as_bytes()),
            gzip_tag: tag_of(&gzip),
            gzip,
        }
    }

    fn respond(&'static self, req: &HttpRequest) -> HttpResponse {
        let gzip = accepts_gzip(req) && !self.gzip.is_empty();
        let (body, tag): (&'static [u8], &EntityTag) = if gzip {
            (&self.gzip, &self.gzip_tag)
        } else {
            (self.plain, &self.plain_tag)
        };
        let fresh = match IfNoneMatch::parse(req) {
            Ok(IfNoneMatch::Any) => true,
            Ok(IfNoneMatch::Items(tags)) => tags.iter().any(|t| t.weak_eq(tag)),
            Err(_) => false,
        };
        let mut r = if fresh {
            HttpResponse::NotModified()
        } else {
            HttpResponse::Ok()
        };
        r.insert_header(("Content-Security-Policy", POLICY))
            .insert_header(("X-Content-Type-Options", "nosniff"))
            .insert_header(("Referrer-Policy", "no-referrer"))
            .insert_header(CacheControl(vec![
                CacheDirective::Public,
                CacheDirective::NoCache,
            ]))
            .insert_header(header::ETag(tag.clone()))
            .insert_header((header::VARY, "Accept-Encoding"));
        if fresh {
            return r.finish();
        }
        if gzip {
            r.insert_header((header::CONTENT_ENCODING, "gzip"));
        }
        r.content_type(self.content_type).body(body)
    }
}

/// Whether the client takes gzip (`Accept-Encoding` names it, or `*`,
/// with a weight above zero).
fn accepts_gzip(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::ACCEPT_ENCODING)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let weight = parts
                .find_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
                .map_or(Some(1.0), |q| q.parse::<f32>().ok());
            (name.eq_ignore_ascii_case("gzip") || name == "*") && weight.is_some_and(|q| q > 0.0)
        })
}

/// The assets, made at the first request.
fn assets() -> &'static [Asset; 4] {
    static ASSETS: OnceLock<[Asset; 4]> = OnceLock::new();
    ASSETS.get_or_init(|| {
        [
            Asset::new("text/html; charset=utf-8", INDEX),
            Asset::new("text/javascript; charset=utf-8", SCRIPT),
            Asset::new("text/css; charset=utf-8", STYLE),
            Asset::new("image/svg+xml", ICON),
        ]
    })
}

/// The page's paths and their handlers, each for GET.
pub fn routes() -> [(&'static str, actix_web::Route); 5] {
    use actix_web::web::route;
    [
        ("/", route().to(index)),
        ("/app.js", route().to(script)),
        ("/app.css", route().to(style)),
        ("/favicon.svg", route().to(icon)),
        ("/favicon.ico", route().to(icon)),
    ]
}

pub async fn index(req: HttpRequest) -> HttpResponse {
    assets()[0].respond(&req)
}

pub async fn script(req: HttpRequest) -> HttpResponse {
    assets()[1].respond(&req)
}

pub async fn style(req: HttpRequest) -> HttpResponse {
    assets()[2].respond(&req)
}

/// At `/favicon.svg`, which the page names, and at `/favicon.ico`, where
/// browsers look without being told.
pub async fn icon(req: HttpRequest) -> HttpResponse {
    assets()[3].respond(&req)
}
