//! Sale phases: when an event is on sale, and to whom. A fan-club presale
//! admits its members from its opening; a general sale admits everyone.
//!
//! [`SalePhases::admit`] is the one answer to "may this fan hold now?",
//! and when not, what the fan's app should say: count down to the next
//! phase open to the fan, or tell the fan this phase is for members.
//! [`take_places`] is the other: may this fan own that many more places?

use crate::section::CommandError;

/// One phase: open from `opens_at_ms` until `closes_at_ms` (excluded; none
/// = until the show), to the fans holding one of `memberships` (none
/// listed = everyone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SalePhase {
    pub name: String,
    pub opens_at_ms: u64,
    pub closes_at_ms: Option<u64>,
    pub memberships: Vec<String>,
}

impl SalePhase {
    fn is_open_at(&self, now_ms: u64) -> bool {
        self.opens_at_ms <= now_ms && self.closes_at_ms.is_none_or(|c| now_ms < c)
    }

    fn admits(&self, is_member: &dyn Fn(&str) -> bool) -> bool {
        self.memberships.is_empty() || self.memberships.iter().any(|m| is_member(m))
    }
}

/// An event's phases, in the order the organiser listed them. No phases
/// at all means always on sale (events from before phases existed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SalePhases(pub Vec<SalePhase>);

/// Whether a fan may hold now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Open,
    /// Nothing is open now; the next phase open to this fan opens then.
    NotYet {
        opens_at_ms: u64,
    },
    /// Phases are open or to come, but none of them admits this fan (now
    /// or, with `opens_at_ms`, until then).
    MembershipRequired {
        opens_at_ms: Option<u64>,
    },
    /// Every phase has closed.
    Closed,
}

impl SalePhases {
    /// May a fan who is a member of what `is_member` says hold at
    /// `now_ms`?
    pub fn admit(&self, now_ms: u64, is_member: &dyn Fn(&str) -> bool) -> Admission {
        if self.0.is_empty() {
            return Admission::Open;
        }
        let open_now = || self.0.iter().filter(|p| p.is_open_at(now_ms));
        if open_now().any(|p| p.admits(is_member)) {
            return Admission::Open;
        }
        let next_for_fan = self
            .0
            .iter()
            .filter(|p| p.opens_at_ms > now_ms && p.admits(is_member))
            .map(|p| p.opens_at_ms)
            .min();
        let others_later = self.0.iter().any(|p| p.opens_at_ms > now_ms);
        match next_for_fan {
            _ if open_now().next().is_some() => Admission::MembershipRequired {
                opens_at_ms: next_for_fan,
            },
            Some(opens_at_ms) => Admission::NotYet { opens_at_ms },
            None if others_later => Admission::MembershipRequired { opens_at_ms: None },
            None => Admission::Closed,
        }
    }
}

/// The places a fan owns of an event once it takes `places` more, held
/// plus booked across all its sections: refused past the event's
/// `limit` (invariant 7), and then the fan owns what it did.
pub fn take_places(limit: u32, owned: u32, places: u32) -> Result<u32, CommandError> {
    match owned.checked_add(places) {
        Some(after) if after <= limit => Ok(after),
        _ => Err(CommandError::FanLimitReached { limit, owned }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fan_takes_places_up_to_the_limit_and_no_further() {
        assert_eq!(take_places(4, 0, 4), Ok(4));
        assert_eq!(take_places(4, 3, 1), Ok(4));
        assert_eq!(
            take_places(4, 3, 2),
            Err(CommandError::FanLimitReached { limit: 4, owned: 3 })
        );
        assert_eq!(
            take_places(u32::MAX, u32::MAX, 1),
            Err(CommandError::FanLimitReached {
                limit: u32::MAX,
                owned: u32::MAX
            })
        );
    }

    const H: u64 = 3_600_000;

    /// A fan-club presale from 1h to 3h, a general sale from 2h (the
    /// presale overlaps it), closing at 10h.
    fn phases() -> SalePhases {
        SalePhases(vec![
            SalePhase {
                name: "presale".into(),
                opens_at_ms: H,
                closes_at_ms: Some(3 * H),
                memberships: vec!["fanclub".into(), "gold".into()],
            },
            SalePhase {
                name: "general".into(),
                opens_at_ms: 2 * H,
                closes_at_ms: Some(10 * H),
                memberships: vec![],
            },
        ])
    }

    fn member(m: &str) -> bool {
        m == "gold"
    }

    fn nobody(_: &str) -> bool {
        false
    }

    type Member = dyn Fn(&str) -> bool;

    #[test]
    fn members_first_then_everyone_then_nobody() {
        let p = phases();
        let cases: [(u64, &Member, Admission); 9] = [
            (0, &member, Admission::NotYet { opens_at_ms: H }),
            (0, &nobody, Admission::NotYet { opens_at_ms: 2 * H }),
            (H, &member, Admission::Open),
            (
                H,
                &nobody,
                Admission::MembershipRequired {
                    opens_at_ms: Some(2 * H),
                },
            ),
            (2 * H - 1, &member, Admission::Open),
            (2 * H, &nobody, Admission::Open),
            (3 * H, &member, Admission::Open),
            (10 * H - 1, &nobody, Admission::Open),
            (10 * H, &member, Admission::Closed),
        ];
        for (now, who, want) in cases {
            assert_eq!(p.admit(now, who), want, "at {now}");
        }
    }

    #[test]
    fn a_members_only_sale_tells_others_there_is_nothing_to_wait_for() {
        let p = SalePhases(vec![phases().0.remove(0)]);
        assert_eq!(
            p.admit(0, &nobody),
            Admission::MembershipRequired { opens_at_ms: None }
        );
        assert_eq!(
            p.admit(H, &nobody),
            Admission::MembershipRequired { opens_at_ms: None }
        );
        assert_eq!(p.admit(3 * H, &nobody), Admission::Closed);
    }

    #[test]
    fn no_phases_is_always_open() {
        assert_eq!(SalePhases::default().admit(0, &nobody), Admission::Open);
        assert_eq!(
            SalePhases::default().admit(u64::MAX, &nobody),
            Admission::Open
        );
    }
}
