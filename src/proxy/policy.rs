//! Per-request policy: the operator's floor combined with the privacy headers of the gateways
//! Lethe's users come from.
//!
//! # Rules
//! - The operator's policy is a floor. Headers can add types and pick a style that hides at
//!   least as much (`label` and `placeholder` hide everything, `mask` keeps four characters);
//!   they can remove types, pick a weaker style or switch detection off only when the config
//!   says `policy.allow_client_lower = true`.
//! - `X-Compliance-Mode: HIPAA` turns every type on and allows only routes marked
//!   `hipaa_baa = true`. `GDPR` and `PCI` turn every type on.
//! - The logging headers are accepted for compatibility and change nothing about content:
//!   Lethe has no content log to switch on. `X-Logging-Level: error` only limits metrics.
//! - No privacy or logging header is forwarded upstream.
//!
//! Unknown type names in `X-PII-Types` are ignored (other gateways know types Lethe does not);
//! an unknown style or compliance mode is a 400, since the client asked for a protection Lethe
//! cannot promise.

use std::collections::HashMap;
use std::sync::Mutex;

use http::{HeaderMap, HeaderName};

use super::error::ProxyError;
use crate::config::Floor;
use crate::scrub::{Kind, KindSet, Policy, Scrubber, Style};

/// Request headers that steer privacy and logging; all are consumed, none forwarded.
pub const PRIVACY_HEADERS: [HeaderName; 10] = [
    HeaderName::from_static("x-pii-detection"),
    HeaderName::from_static("x-pii-masking"),
    HeaderName::from_static("x-pii-types"),
    HeaderName::from_static("x-compliance-mode"),
    HeaderName::from_static("x-logging-level"),
    HeaderName::from_static("x-log-request"),
    HeaderName::from_static("x-log-response"),
    HeaderName::from_static("x-log-metadata"),
    HeaderName::from_static("x-log-user-id"),
    HeaderName::from_static("x-log-session-id"),
];

/// What one request gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestPolicy {
    /// Whether anything is scrubbed at all.
    pub scrub: bool,
    /// Types detected.
    pub kinds: KindSet,
    /// Style per type.
    pub styles: [Style; Kind::COUNT],
    /// HIPAA mode: only routes with a BAA.
    pub hipaa: bool,
    /// `X-Logging-Level: error`: record error metrics only.
    pub errors_only: bool,
}

/// How much a style hides from the provider.
fn strength(style: Style) -> u8 {
    match style {
        Style::Mask => 0,
        Style::Label | Style::Placeholder => 1,
    }
}

/// The privacy headers, named once: a lookup by name text parses the name every time.
const PII_DETECTION: HeaderName = HeaderName::from_static("x-pii-detection");
const PII_TYPES: HeaderName = HeaderName::from_static("x-pii-types");
const PII_MASKING: HeaderName = HeaderName::from_static("x-pii-masking");
const COMPLIANCE_MODE: HeaderName = HeaderName::from_static("x-compliance-mode");
const LOGGING_LEVEL: HeaderName = HeaderName::from_static("x-logging-level");

fn header<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn switch(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" | "enabled" | "enable" => Some(true),
        "0" | "false" | "off" | "no" | "disabled" | "disable" | "none" => Some(false),
        _ => None,
    }
}

/// Type names other gateways use, mapped to Lethe's kinds.
fn kinds_named(name: &str) -> KindSet {
    let name = name.trim().to_ascii_lowercase().replace('-', "_");
    let mut set = KindSet::EMPTY;
    let mut add = |k: Kind| set.insert(k);
    match name.as_str() {
        "all" => return KindSet::ALL,
        "credit_card" | "card" | "cc" | "credit_card_number" => add(Kind::CreditCard),
        "ssn" | "us_ssn" => add(Kind::Ssn),
        "email" | "email_address" => add(Kind::Email),
        "phone" | "phone_number" => add(Kind::Phone),
        "ip" | "ip_address" => add(Kind::IpAddress),
        "iban" | "iban_code" => add(Kind::Iban),
        "api_key" => add(Kind::ApiKey),
        "jwt" => add(Kind::Jwt),
        "private_key" => add(Kind::PrivateKey),
        "dictionary" => add(Kind::Dictionary),
        "secret" | "secrets" | "credentials" => {
            add(Kind::ApiKey);
            add(Kind::Jwt);
            add(Kind::PrivateKey);
        }
        _ => {}
    }
    set
}

fn style_named(value: &str) -> Option<Style> {
    match value.to_ascii_lowercase().as_str() {
        "mask" | "partial" => Some(Style::Mask),
        "label" | "redact" | "type" | "tag" => Some(Style::Label),
        "placeholder" | "pseudonymize" | "tokenize" | "reversible" => Some(Style::Placeholder),
        _ => None,
    }
}

impl RequestPolicy {
    /// The floor alone.
    pub fn floor(floor: &Floor) -> RequestPolicy {
        RequestPolicy {
            scrub: true,
            kinds: floor.policy.kinds(),
            styles: Kind::ALL.map(|k| floor.policy.style(k)),
            hipaa: false,
            errors_only: false,
        }
    }

    /// The floor combined with `headers`.
    pub fn from_headers(floor: &Floor, headers: &HeaderMap) -> Result<RequestPolicy, ProxyError> {
        let mut policy = RequestPolicy::floor(floor);
        let lower = floor.allow_client_lower;
        if let Some(v) = header(headers, &PII_DETECTION) {
            match switch(v) {
                Some(false) if lower => policy.scrub = false,
                Some(_) => {}
                None => return Err(ProxyError::BadPrivacyHeader),
            }
        }
        if let Some(v) = header(headers, &PII_TYPES) {
            let asked = v
                .split(',')
                .filter(|n| !n.trim().is_empty())
                .fold(KindSet::EMPTY, |set, n| set.union(kinds_named(n)));
            policy.kinds = if lower {
                asked
            } else {
                policy.kinds.union(asked)
            };
        }
        if let Some(v) = header(headers, &PII_MASKING) {
            match (style_named(v), switch(v)) {
                (Some(style), _) => {
                    for current in &mut policy.styles {
                        if lower || strength(style) >= strength(*current) {
                            *current = style;
                        }
                    }
                }
                // `false` asks for no masking at all: a lowering.
                (None, Some(false)) if lower => policy.scrub = false,
                // `true` asks for masking as configured.
                (None, Some(_)) => {}
                (None, None) => return Err(ProxyError::BadPrivacyHeader),
            }
        }
        if let Some(v) = header(headers, &COMPLIANCE_MODE) {
            match v.to_ascii_lowercase().as_str() {
                "hipaa" => {
                    policy.hipaa = true;
                    policy.scrub = true;
                    policy.kinds = KindSet::ALL;
                }
                "gdpr" | "pci" | "pci-dss" | "pci_dss" => {
                    policy.scrub = true;
                    policy.kinds = KindSet::ALL;
                }
                "" | "none" | "off" => {}
                _ => return Err(ProxyError::BadPrivacyHeader),
            }
        }
        if let Some(v) = header(headers, &LOGGING_LEVEL) {
            policy.errors_only = v.eq_ignore_ascii_case("error");
        }
        if policy.kinds.is_empty() {
            policy.scrub = false;
        }
        Ok(policy)
    }

    /// The styles used on the response side: a placeholder stands for a value the client
    /// sent, so values the provider produces are labelled instead.
    pub fn response_styles(&self) -> [Style; Kind::COUNT] {
        self.styles.map(|s| match s {
            Style::Placeholder => Style::Label,
            other => other,
        })
    }

    /// Whether the request side uses placeholders (and so the response needs restoring).
    pub fn uses_placeholders(&self) -> bool {
        self.kinds
            .iter()
            .any(|k| self.styles[k.index()] == Style::Placeholder)
    }
}

/// Compiled scrubbers per (kinds, styles), built on first use. The floor's pair is built at
/// start-up; header-driven variants are few (a handful of styles times the types clients ask
/// for) and the cache is capped.
pub struct Scrubbers {
    base: Policy,
    /// The floor's request and response pairs, which most requests use: found without a lock.
    floor: Vec<(Variant, Scrubber)>,
    cache: Mutex<HashMap<Variant, Scrubber>>,
}

/// What tells one compiled scrubber from another.
type Variant = (KindSet, [Style; Kind::COUNT]);

/// Cap on compiled variants kept; beyond it a variant is compiled per request.
const MAX_VARIANTS: usize = 256;

impl Scrubbers {
    /// A cache over the floor's policy (its dictionary terms are shared by every variant).
    pub fn new(floor: &Floor) -> Result<Scrubbers, crate::scrub::PolicyError> {
        let mut scrubbers = Scrubbers {
            base: floor.policy.clone(),
            floor: Vec::new(),
            cache: Mutex::new(HashMap::new()),
        };
        let policy = RequestPolicy::floor(floor);
        for styles in [policy.styles, policy.response_styles()] {
            let scrubber = scrubbers.get(policy.kinds, styles)?;
            scrubbers.floor.push(((policy.kinds, styles), scrubber));
        }
        Ok(scrubbers)
    }

    /// The scrubber for `kinds` with `styles`.
    pub fn get(
        &self,
        kinds: KindSet,
        styles: [Style; Kind::COUNT],
    ) -> Result<Scrubber, crate::scrub::PolicyError> {
        let key = (kinds, styles);
        if let Some((_, s)) = self.floor.iter().find(|(variant, _)| *variant == key) {
            return Ok(s.clone());
        }
        if let Some(s) = self.lock().get(&key) {
            return Ok(s.clone());
        }
        let mut policy = self.base.clone().with_kinds(kinds);
        for kind in Kind::ALL {
            policy = policy.with_kind_style(kind, styles[kind.index()]);
        }
        let scrubber = Scrubber::new(&policy)?;
        let mut cache = self.lock();
        if cache.len() < MAX_VARIANTS {
            cache.insert(key, scrubber.clone());
        }
        Ok(scrubber)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Variant, Scrubber>> {
        // A poisoned lock only means another request panicked while inserting; the map is
        // still a valid cache.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn floor(lower: bool) -> Floor {
        Floor {
            policy: Policy::default().with_kinds(KindSet::parse_list("email,credit_card").unwrap()),
            allow_client_lower: lower,
        }
    }

    fn with(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn headers_raise_but_do_not_lower_the_floor() {
        let f = floor(false);
        let p = RequestPolicy::from_headers(
            &f,
            &with(&[("x-pii-types", "ssn"), ("x-pii-detection", "false")]),
        )
        .unwrap();
        assert!(p.scrub);
        assert!(p.kinds.contains(Kind::Ssn) && p.kinds.contains(Kind::Email));
        let p = RequestPolicy::from_headers(&f, &with(&[("x-pii-masking", "mask")])).unwrap();
        assert_eq!(
            p.styles[Kind::Email.index()],
            Style::Label,
            "mask is weaker than label"
        );
        let p =
            RequestPolicy::from_headers(&f, &with(&[("x-pii-masking", "placeholder")])).unwrap();
        assert_eq!(p.styles[Kind::Email.index()], Style::Placeholder);
        assert_eq!(p.styles[Kind::CreditCard.index()], Style::Placeholder);
        assert!(p.uses_placeholders());
        assert_eq!(p.response_styles()[Kind::Email.index()], Style::Label);
    }

    #[test]
    fn lowering_needs_the_operator_s_consent() {
        let f = floor(true);
        let p = RequestPolicy::from_headers(&f, &with(&[("x-pii-detection", "off")])).unwrap();
        assert!(!p.scrub);
        let p = RequestPolicy::from_headers(&f, &with(&[("x-pii-types", "ssn")])).unwrap();
        assert!(p.kinds.contains(Kind::Ssn) && !p.kinds.contains(Kind::Email));
    }

    #[test]
    fn compliance_and_logging_headers() {
        let f = floor(false);
        let p = RequestPolicy::from_headers(&f, &with(&[("x-compliance-mode", "HIPAA")])).unwrap();
        assert!(p.hipaa && p.kinds == KindSet::ALL);
        assert_eq!(
            RequestPolicy::from_headers(&f, &with(&[("x-compliance-mode", "whatever")])),
            Err(ProxyError::BadPrivacyHeader)
        );
        let p = RequestPolicy::from_headers(
            &f,
            &with(&[
                ("x-logging-level", "error"),
                ("x-log-request", "true"),
                ("x-log-response", "true"),
            ]),
        )
        .unwrap();
        assert!(p.errors_only && p.scrub);
        assert_eq!(
            RequestPolicy::from_headers(&f, &with(&[("x-pii-masking", "rot13")])),
            Err(ProxyError::BadPrivacyHeader)
        );
    }
}
