//! The shard map: which shard (a pod of the StatefulSet, with its own
//! volume and journal) owns which events. A shard serves its own events
//! only; the Ingress routes each event to its shard, and both read this
//! one map (`boxoffice shards routes` renders the Ingress from it).
//!
//! The file is TOML, one line per shard, listing its events:
//!
//! ```toml
//! [shards]
//! boxoffice-0 = ["demo"]
//! boxoffice-1 = ["tour-seoul", "tour-busan"]
//! ```

use std::collections::BTreeMap;

use crate::domain::is_valid_name;

/// Most shards a map may name, and most events per shard: far above any
/// deployment, low enough that a hostile file cannot make routing slow.
pub const SHARDS_MAX: usize = 1_000;
pub const EVENTS_PER_SHARD_MAX: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMap {
    /// Shard name → its events.
    shards: BTreeMap<String, Vec<String>>,
    /// Event → its shard.
    owners: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardMapError {
    #[error("not a shard map: {0}")]
    Syntax(String),
    #[error("shard {0:?}: a shard is a StatefulSet pod name, `<name>-<ordinal>` (lowercase letters, digits, `-`)")]
    BadShard(String),
    #[error("shard {shard:?}: {event:?} is not an event id (1-32 of A-Z a-z 0-9 _ -)")]
    BadEvent { shard: String, event: String },
    #[error("event {event:?} is listed for both {first:?} and {second:?}: an event has one shard")]
    TwoOwners {
        event: String,
        first: String,
        second: String,
    },
    #[error(
        "over the limit: at most {SHARDS_MAX} shards and {EVENTS_PER_SHARD_MAX} events per shard"
    )]
    TooLarge,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    shards: BTreeMap<String, Vec<String>>,
}

/// A StatefulSet pod name: a DNS label ending in `-<ordinal>`.
fn is_shard_name(name: &str) -> bool {
    let Some((set, ordinal)) = name.rsplit_once('-') else {
        return false;
    };
    !set.is_empty()
        && name.len() <= 63
        && !ordinal.is_empty()
        && ordinal.bytes().all(|b| b.is_ascii_digit())
        && set
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && set.starts_with(|c: char| c.is_ascii_lowercase())
}

impl ShardMap {
    pub fn parse(text: &str) -> Result<ShardMap, ShardMapError> {
        let file: File = toml::from_str(text).map_err(|e| ShardMapError::Syntax(e.to_string()))?;
        if file.shards.len() > SHARDS_MAX
            || file.shards.values().any(|e| e.len() > EVENTS_PER_SHARD_MAX)
        {
            return Err(ShardMapError::TooLarge);
        }
        let mut owners: BTreeMap<String, String> = BTreeMap::new();
        for (shard, events) in &file.shards {
            if !is_shard_name(shard) {
                return Err(ShardMapError::BadShard(shard.clone()));
            }
            for event in events {
                if !is_valid_name(event) {
                    return Err(ShardMapError::BadEvent {
                        shard: shard.clone(),
                        event: event.clone(),
                    });
                }
                if let Some(first) = owners.insert(event.clone(), shard.clone()) {
                    return Err(ShardMapError::TwoOwners {
                        event: event.clone(),
                        first,
                        second: shard.clone(),
                    });
                }
            }
        }
        Ok(ShardMap {
            shards: file.shards,
            owners,
        })
    }

    /// The shard that owns `event`, if any does.
    pub fn owner(&self, event: &str) -> Option<&str> {
        self.owners.get(event).map(String::as_str)
    }

    pub fn has_shard(&self, shard: &str) -> bool {
        self.shards.contains_key(shard)
    }

    /// Every shard with its events, by name.
    pub fn shards(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.shards.iter().map(|(s, e)| (s.as_str(), e.as_slice()))
    }
}

/// Who this server is among the shards: it serves its own events only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sharding {
    pub map: ShardMap,
    pub me: String,
}

impl Sharding {
    /// `Ok` for an event of this shard; otherwise the shard that owns it,
    /// if any.
    pub fn check(&self, event: &str) -> Result<(), Option<&str>> {
        match self.map.owner(event) {
            Some(owner) if owner == self.me => Ok(()),
            other => Err(other),
        }
    }
}

/// The event a request's path names, if any: `/v1/events/{event}[/…]`,
/// and the ids of `/v1/holds/{id}`, `/v1/bookings/{id}` and
/// `/v1/admin/outbox/{id}`, which start with their event (`demo.A.h2a.…`).
/// Percent-escapes are decoded, as routing decodes them.
pub fn event_of_path(path: &str) -> Option<String> {
    let rest = [
        "/v1/events/",
        "/v1/holds/",
        "/v1/bookings/",
        "/v1/admin/outbox/",
    ]
    .iter()
    .find_map(|p| path.strip_prefix(p))?;
    let segment = rest.split('/').next().unwrap_or("");
    let segment = percent_decode(segment)?;
    let event = segment.split('.').next().unwrap_or("");
    (!event.is_empty()).then(|| event.to_owned())
}

/// `%XX` escapes decoded; `None` when one is malformed or the result is
/// not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The Kubernetes objects that route each event to its shard, as YAML:
/// one Service per shard (selecting its pod) and one Ingress with a
/// regex per shard over its events' paths and ids. `set` is the
/// StatefulSet's name (the pods' and Services' prefix).
pub fn routes_yaml(map: &ShardMap, set: &str, command: &str) -> String {
    let mut out = format!(
        "# Generated by `{command}`: do not edit.\n\
         # CI renders it again from the shard map and fails on any difference.\n"
    );
    let service = |shard: &str| {
        let ordinal = shard.rsplit_once('-').map_or("", |(_, o)| o);
        format!("{set}-shard-{ordinal}")
    };
    for (shard, _) in map.shards() {
        out.push_str(&format!(
            "---\n\
             # The one pod of shard {shard}.\n\
             apiVersion: v1\n\
             kind: Service\n\
             metadata:\n  name: {service}\n\
             spec:\n  selector:\n    app.kubernetes.io/component: shard\n    statefulset.kubernetes.io/pod-name: {shard}\n  ports:\n    - name: http\n      port: 80\n      targetPort: http\n",
            service = service(shard)
        ));
    }
    out.push_str(
        "---\n\
         # Routes by event: event paths carry the event id, and hold, booking and\n\
         # outbox ids start with it (demo.A.h2a....). Anything else (the event\n\
         # list, event creation) goes to any shard: a shard refuses another's\n\
         # event with 421 naming its owner.\n\
         apiVersion: networking.k8s.io/v1\n\
         kind: Ingress\n\
         metadata:\n  name: boxoffice\n  annotations:\n    nginx.ingress.kubernetes.io/use-regex: \"true\"\n\
         spec:\n  ingressClassName: nginx\n  rules:\n    - http:\n        paths:\n",
    );
    for (shard, events) in map.shards() {
        if events.is_empty() {
            continue;
        }
        let alternatives = events.join("|");
        for path in [
            format!("/v1/events/({alternatives})(/.*)?"),
            format!("/v1/(holds|bookings)/({alternatives})\\..*"),
            format!("/v1/admin/outbox/({alternatives})\\..*"),
        ] {
            out.push_str(&format!(
                "          - path: {path}\n            pathType: ImplementationSpecific\n            backend:\n              service:\n                name: {service}\n                port:\n                  name: http\n",
                service = service(shard)
            ));
        }
    }
    out.push_str(&format!(
        "          - path: /\n            pathType: Prefix\n            backend:\n              service:\n                name: {set}\n                port:\n                  name: http\n"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_parses_and_names_owners() {
        let m =
            ShardMap::parse("[shards]\nbox-0 = [\"demo\"]\nbox-1 = [\"tour\", \"t2\"]\n").unwrap();
        assert_eq!(m.owner("tour"), Some("box-1"));
        assert_eq!(m.owner("nope"), None);
        let s = Sharding {
            map: m,
            me: "box-0".into(),
        };
        assert_eq!(s.check("demo"), Ok(()));
        assert_eq!(s.check("t2"), Err(Some("box-1")));
        assert_eq!(s.check("nope"), Err(None));
    }

    #[test]
    fn bad_maps_are_refused_by_what_is_wrong() {
        let e = |t: &str| ShardMap::parse(t).unwrap_err();
        assert!(matches!(e("shards = 1"), ShardMapError::Syntax(_)));
        assert!(matches!(
            e("[shards]\nBox = []"),
            ShardMapError::BadShard(_)
        ));
        assert!(matches!(
            e("[shards]\nbox = []"),
            ShardMapError::BadShard(_)
        ));
        assert!(matches!(
            e("[shards]\nbox-0 = [\"a.b\"]"),
            ShardMapError::BadEvent { .. }
        ));
        assert_eq!(
            e("[shards]\nbox-0 = [\"x\"]\nbox-1 = [\"x\"]"),
            ShardMapError::TwoOwners {
                event: "x".into(),
                first: "box-0".into(),
                second: "box-1".into()
            }
        );
        assert!(matches!(e("[other]\n"), ShardMapError::Syntax(_)));
    }

    #[test]
    fn paths_name_their_event() {
        assert_eq!(event_of_path("/v1/events/demo").as_deref(), Some("demo"));
        assert_eq!(
            event_of_path("/v1/events/demo/holds").as_deref(),
            Some("demo")
        );
        assert_eq!(
            event_of_path("/v1/events/de%6Do/sections/A/seats").as_deref(),
            Some("demo")
        );
        assert_eq!(
            event_of_path("/v1/holds/demo.A.h2a.5f1c9e0b7d3a8642/confirm").as_deref(),
            Some("demo")
        );
        assert_eq!(
            event_of_path("/v1/bookings/tour.B.b1.0000000000000001").as_deref(),
            Some("tour")
        );
        assert_eq!(
            event_of_path("/v1/admin/outbox/demo.A.b2a.confirmation/retry").as_deref(),
            Some("demo")
        );
        assert_eq!(event_of_path("/v1/events"), None);
        assert_eq!(event_of_path("/v1/events/"), None);
        assert_eq!(event_of_path("/v1/admin/snapshots"), None);
        assert_eq!(event_of_path("/v1/events/%ZZ"), None);
    }
}
