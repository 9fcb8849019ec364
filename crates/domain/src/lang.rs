//! The languages a fan reads its emails in, and how a fan's wish for one
//! (a token's `locale`, a request's `Accept-Language`) picks among them.

/// A language boxoffice writes to fans in. English is the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Lang {
    #[default]
    En,
    Ko,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Ko];

    /// Its BCP 47 tag: `en`, `ko`.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ko => "ko",
        }
    }

    /// The language of a BCP 47 tag (`ko`, `ko-KR`, `en_US`: the primary
    /// subtag decides, in any case), if boxoffice writes it.
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag.trim().split(['-', '_']).next().unwrap_or("");
        Lang::ALL
            .into_iter()
            .find(|l| primary.eq_ignore_ascii_case(l.tag()))
    }

    /// The language an `Accept-Language` header (RFC 9110 §12.5.4) likes
    /// best among those boxoffice writes: the highest `q` (1 when not
    /// given), the first listed among equals; `q=0` means "not this one".
    /// `None` when it names none of them (or does not parse).
    pub fn from_accept_language(header: &str) -> Option<Lang> {
        let mut best: Option<(u16, Lang)> = None;
        for range in header.split(',').take(ACCEPT_RANGES_MAX) {
            let mut parts = range.split(';');
            let Some(lang) = parts.next().and_then(Lang::from_tag) else {
                continue;
            };
            let mut q = 1000;
            for p in parts {
                if let Some((k, v)) = p.split_once('=') {
                    if k.trim().eq_ignore_ascii_case("q") {
                        q = parse_q(v.trim()).unwrap_or_default();
                    }
                }
            }
            if q > 0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, lang));
            }
        }
        best.map(|(_, l)| l)
    }
}

/// Ranges of an `Accept-Language` header looked at: real ones list a few.
const ACCEPT_RANGES_MAX: usize = 32;

/// A quality value, `0`..`1` with up to three decimals, in thousandths.
fn parse_q(v: &str) -> Option<u16> {
    let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{frac:0<3}").parse::<u16>().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_name_their_language_by_the_primary_subtag() {
        assert_eq!(Lang::from_tag("ko"), Some(Lang::Ko));
        assert_eq!(Lang::from_tag("ko-KR"), Some(Lang::Ko));
        assert_eq!(Lang::from_tag("KO_kr"), Some(Lang::Ko));
        assert_eq!(Lang::from_tag("en-GB"), Some(Lang::En));
        assert_eq!(Lang::from_tag("ja"), None);
        assert_eq!(Lang::from_tag("kor"), None);
        assert_eq!(Lang::from_tag(""), None);
    }

    #[test]
    fn accept_language_picks_the_best_liked_written_language() {
        let pick = Lang::from_accept_language;
        assert_eq!(pick("ko-KR,ko;q=0.9,en-US;q=0.8,en;q=0.7"), Some(Lang::Ko));
        assert_eq!(pick("ja, ko;q=0.5, en;q=0.6"), Some(Lang::En));
        assert_eq!(
            pick("en;q=0.5, ko;q=0.5"),
            Some(Lang::En),
            "first among equals"
        );
        assert_eq!(
            pick("ko;q=0, en;q=0.1"),
            Some(Lang::En),
            "q=0: not this one"
        );
        assert_eq!(pick("ko;q=0"), None);
        assert_eq!(pick("fr-CH, fr;q=0.9, *;q=0.5"), None);
        assert_eq!(
            pick("ko;q=2, en;q=0.3"),
            Some(Lang::En),
            "a bad q is no wish"
        );
        assert_eq!(pick("ko;q=0.1234, en;q=0.001"), Some(Lang::En));
        assert_eq!(pick(" ko ; Q=1.0 "), Some(Lang::Ko));
        assert_eq!(pick(""), None);
        // Only the first ranges of a long header are read.
        let long = format!("{}ko", "fr,".repeat(40));
        assert_eq!(pick(&long), None);
    }
}
