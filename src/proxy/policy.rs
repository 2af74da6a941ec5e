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
//!   `X-Log-*` headers are never read, however many copies come.
//! - No privacy or logging header is forwarded upstream.
//!
//! # Repeated headers
//! A header sent several times is one comma-separated list (RFC 9110 §5.3): an SDK and a proxy
//! in front of Lethe may each add their own copy, and reading only the first would let the
//! other one go unheard. Every element of every copy counts, and where elements disagree the
//! answer leans toward more privacy: any element naming HIPAA turns HIPAA on, types are the
//! union of all of them, detection or masking is off only when every element says off, and
//! two different masking styles are a 400 (Lethe cannot tell which one the client meant, and
//! the styles differ in what the answer contains). A privacy header that is not visible ASCII
//! is a 400 rather than ignored.
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

/// Which of `names` the request carries, found in one pass over its field names: most
/// requests carry none, and looking at a dozen names costs less than hashing each of `names`.
fn present<const N: usize>(headers: &HeaderMap, names: [&HeaderName; N]) -> [bool; N] {
    let mut found = [false; N];
    for name in headers.keys() {
        // Every privacy header starts with `x-`, which leaves most names at one compare.
        if !name.as_str().starts_with("x-") {
            continue;
        }
        for (wanted, found) in names.iter().zip(&mut found) {
            *found |= name == *wanted;
        }
    }
    found
}

/// Every non-empty element of every copy of `name`, trimmed; `None` when the header is absent
/// (`sent` is false). A copy that is not visible ASCII is a 400: a privacy header Lethe cannot
/// read must not be skipped as if it had not been sent.
fn elements<'h>(
    headers: &'h HeaderMap,
    name: &HeaderName,
    sent: bool,
) -> Result<Option<impl Iterator<Item = &'h str>>, ProxyError> {
    if !sent {
        return Ok(None);
    }
    let copies = headers.get_all(name);
    if copies.iter().any(|v| v.to_str().is_err()) {
        return Err(ProxyError::BadPrivacyHeader);
    }
    Ok(Some(
        copies
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|e| !e.is_empty()),
    ))
}

/// Whether `X-Logging-Level` asks for error metrics only. Any element saying `error` is
/// enough: recording less is the side ambiguity falls on. No level records more than the
/// default, so other values (and unreadable copies) change nothing.
pub fn errors_only(headers: &HeaderMap) -> bool {
    let [sent] = present(headers, [&LOGGING_LEVEL]);
    sent && headers
        .get_all(&LOGGING_LEVEL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|level| level.trim().eq_ignore_ascii_case("error"))
}

/// Folds one on/off element into "every element so far said off".
fn all_off(so_far: Option<bool>, on: bool) -> Option<bool> {
    Some(so_far.unwrap_or(true) && !on)
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
        }
    }

    /// The floor combined with `headers`, every copy of each read as one list (see the module
    /// docs for how disagreeing elements are settled).
    pub fn from_headers(floor: &Floor, headers: &HeaderMap) -> Result<RequestPolicy, ProxyError> {
        let mut policy = RequestPolicy::floor(floor);
        let lower = floor.allow_client_lower;
        let [detection, types, masking, compliance] = present(
            headers,
            [&PII_DETECTION, &PII_TYPES, &PII_MASKING, &COMPLIANCE_MODE],
        );
        if let Some(values) = elements(headers, &PII_DETECTION, detection)? {
            let mut off = None;
            for v in values {
                off = all_off(off, switch(v).ok_or(ProxyError::BadPrivacyHeader)?);
            }
            if lower && off == Some(true) {
                policy.scrub = false;
            }
        }
        if let Some(values) = elements(headers, &PII_TYPES, types)? {
            let asked = values.fold(KindSet::EMPTY, |set, n| set.union(kinds_named(n)));
            policy.kinds = if lower {
                asked
            } else {
                policy.kinds.union(asked)
            };
        }
        if let Some(values) = elements(headers, &PII_MASKING, masking)? {
            let mut named: Option<Style> = None;
            let mut off = None;
            for v in values {
                match (style_named(v), switch(v)) {
                    (Some(style), _) if named.is_some_and(|n| n != style) => {
                        return Err(ProxyError::BadPrivacyHeader)
                    }
                    (Some(style), _) => {
                        named = Some(style);
                        off = all_off(off, true);
                    }
                    // `false` asks for no masking at all (a lowering), `true` for masking as
                    // configured.
                    (None, Some(on)) => off = all_off(off, on),
                    (None, None) => return Err(ProxyError::BadPrivacyHeader),
                }
            }
            if let Some(style) = named {
                for current in &mut policy.styles {
                    if lower || strength(style) >= strength(*current) {
                        *current = style;
                    }
                }
            }
            if lower && off == Some(true) {
                policy.scrub = false;
            }
        }
        if let Some(values) = elements(headers, &COMPLIANCE_MODE, compliance)? {
            for v in values {
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
                    "none" | "off" => {}
                    _ => return Err(ProxyError::BadPrivacyHeader),
                }
            }
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

    /// `pairs` as headers; a name given twice is sent twice.
    fn with(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
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
        let h = with(&[
            ("x-logging-level", "error"),
            ("x-log-request", "true"),
            ("x-log-response", "true"),
        ]);
        let p = RequestPolicy::from_headers(&f, &h).unwrap();
        assert!(errors_only(&h) && p.scrub);
        assert!(!errors_only(&with(&[("x-logging-level", "debug")])));
        assert_eq!(
            RequestPolicy::from_headers(&f, &with(&[("x-pii-masking", "rot13")])),
            Err(ProxyError::BadPrivacyHeader)
        );
    }

    #[test]
    fn repeated_headers_are_one_list_that_leans_toward_privacy() {
        let f = floor(false);
        let policy = |pairs| RequestPolicy::from_headers(&f, &with(pairs));
        // Any copy or element naming HIPAA turns it on, wherever it comes.
        for pairs in [
            &[
                ("x-compliance-mode", "GDPR"),
                ("x-compliance-mode", "HIPAA"),
            ][..],
            &[
                ("x-compliance-mode", "HIPAA"),
                ("x-compliance-mode", "none"),
            ],
            &[("x-compliance-mode", "GDPR, hipaa")],
            &[("x-compliance-mode", ""), ("x-compliance-mode", "HIPAA,")],
        ] {
            let p = policy(pairs).unwrap();
            assert!(p.hipaa && p.scrub && p.kinds == KindSet::ALL, "{pairs:?}");
        }
        assert_eq!(
            policy(&[
                ("x-compliance-mode", "HIPAA"),
                ("x-compliance-mode", "nope")
            ]),
            Err(ProxyError::BadPrivacyHeader)
        );
        // Types from every copy are added.
        let p = policy(&[("x-pii-types", "ssn"), ("x-pii-types", "phone, iban")]).unwrap();
        for kind in [Kind::Ssn, Kind::Phone, Kind::Iban, Kind::Email] {
            assert!(p.kinds.contains(kind), "{kind:?}");
        }
        // Masking: every element must be valid; two different styles are refused.
        for pairs in [
            &[("x-pii-masking", "placeholder"), ("x-pii-masking", "bogus")][..],
            &[("x-pii-masking", "label"), ("x-pii-masking", "placeholder")],
            &[("x-pii-masking", "label,mask")],
            &[("x-pii-detection", "false"), ("x-pii-detection", "maybe")],
        ] {
            assert_eq!(
                policy(pairs),
                Err(ProxyError::BadPrivacyHeader),
                "{pairs:?}"
            );
        }
        let p = policy(&[("x-pii-masking", "label"), ("x-pii-masking", "redact")]).unwrap();
        assert_eq!(p.styles[Kind::Email.index()], Style::Label);
        let p = policy(&[("x-pii-masking", "true"), ("x-pii-masking", "placeholder")]).unwrap();
        assert_eq!(p.styles[Kind::Email.index()], Style::Placeholder);
        // A copy that is not visible ASCII is refused, not skipped.
        let mut h = with(&[("x-compliance-mode", "GDPR")]);
        h.append(
            "x-compliance-mode",
            HeaderValue::from_bytes(b"HIPAA\xff").unwrap(),
        );
        assert_eq!(
            RequestPolicy::from_headers(&f, &h),
            Err(ProxyError::BadPrivacyHeader)
        );
        assert!(errors_only(&with(&[
            ("x-logging-level", "debug"),
            ("x-logging-level", "error")
        ])));
    }

    #[test]
    fn with_lowering_allowed_off_needs_every_copy_to_say_off() {
        let f = floor(true);
        let policy = |pairs| RequestPolicy::from_headers(&f, &with(pairs)).unwrap();
        assert!(policy(&[("x-pii-detection", "off"), ("x-pii-detection", "on")]).scrub);
        assert!(policy(&[("x-pii-detection", "on"), ("x-pii-detection", "off")]).scrub);
        assert!(!policy(&[("x-pii-detection", "off"), ("x-pii-detection", "false")]).scrub);
        assert!(policy(&[("x-pii-masking", "false"), ("x-pii-masking", "label")]).scrub);
        assert!(!policy(&[("x-pii-masking", "false"), ("x-pii-masking", "none")]).scrub);
        // Lowered types are still the union of every copy.
        let p = policy(&[("x-pii-types", "ssn"), ("x-pii-types", "email")]);
        assert!(p.kinds.contains(Kind::Ssn) && p.kinds.contains(Kind::Email));
        assert!(!p.kinds.contains(Kind::CreditCard));
    }
}
