//! Secret formats: API keys and tokens with a fixed prefix and a body of known alphabet and length.
//!
//! Only formats whose prefix and shape are specific enough to fire on nothing else belong here; a
//! generic "long random string" is not a format. Each entry names the provider that documents it.
//! Every prefix is made of characters that a stream already holds back at its tail (letters,
//! digits, `-`, `_`, `.`), so a prefix cut between two deltas is never released half-seen.

use aho_corasick::dfa::Builder as DFABuilder;
use aho_corasick::{AhoCorasickBuilder, MatchKind};

use super::search::PrefixSearch;
use super::{Kind, KindSet};

/// The alphabet of a token body.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Body {
    /// `A-Z a-z 0-9`
    Alnum,
    /// `A-Z 0-9`
    UpperAlnum,
    /// `0-9 a-f`
    LowerHex,
    /// `A-Z a-z 0-9 _ -`
    Base64Url,
    /// `A-Z a-z 0-9 _`
    Word,
    /// `A-Z a-z 0-9 -`
    AlnumDash,
    /// `A-Z a-z 0-9 _ - .`
    Dotted,
}

impl Body {
    const ALL: [Body; 7] = [
        Body::Alnum,
        Body::UpperAlnum,
        Body::LowerHex,
        Body::Base64Url,
        Body::Word,
        Body::AlnumDash,
        Body::Dotted,
    ];

    /// The definition of each alphabet; [`Body::contains`] reads it from [`BODIES`].
    const fn defines(self, c: u8) -> bool {
        match self {
            Body::Alnum => c.is_ascii_alphanumeric(),
            Body::UpperAlnum => c.is_ascii_uppercase() || c.is_ascii_digit(),
            Body::LowerHex => c.is_ascii_digit() || matches!(c, b'a'..=b'f'),
            Body::Base64Url => c.is_ascii_alphanumeric() || c == b'_' || c == b'-',
            Body::Word => c.is_ascii_alphanumeric() || c == b'_',
            Body::AlnumDash => c.is_ascii_alphanumeric() || c == b'-',
            Body::Dotted => c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'),
        }
    }

    /// Whether `c` is in the alphabet: one table lookup, since a token body is read byte by byte
    /// with the alphabet known only at run time.
    #[inline(always)]
    pub(crate) fn contains(self, c: u8) -> bool {
        BODIES[usize::from(c)] & (1 << self as u8) != 0
    }
}

/// For every byte, bit `b as u8` is set when the byte is in alphabet `b`.
static BODIES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let mut k = 0;
        while k < Body::ALL.len() {
            if Body::ALL[k].defines(c as u8) {
                t[c] |= 1 << Body::ALL[k] as u8;
            }
            k += 1;
        }
        c += 1;
    }
    t
};

/// Every secret spans at least this many consecutive [`Body::Dotted`] bytes (letters, digits,
/// `_`, `-`, `.`) from its prefix on: a key its prefix and `min` body bytes, a PEM header its
/// `-----BEGIN`, a JWT its first two groups of four characters (`eyJ` and one more, then the
/// `alg` group, which no first group can be), a `.` and a byte of payload. Text without such a
/// run holds no secret; a test checks the table against it.
pub(crate) const SHORTEST: usize = 10;

/// One secret format: `prefix` then `min..=max` body bytes from `body`.
#[derive(Debug)]
pub(crate) struct SecretFormat {
    pub(crate) prefix: &'static str,
    pub(crate) kind: Kind,
    pub(crate) body: Body,
    pub(crate) min: usize,
    pub(crate) max: usize,
    /// The body opens with a digit.
    pub(crate) digit_first: bool,
}

const fn key(prefix: &'static str, body: Body, min: usize, max: usize) -> SecretFormat {
    SecretFormat {
        prefix,
        kind: Kind::ApiKey,
        body,
        min,
        max,
        digit_first: false,
    }
}

const fn slack(prefix: &'static str) -> SecretFormat {
    SecretFormat {
        digit_first: true,
        ..key(prefix, Body::AlnumDash, 10, 255)
    }
}

/// Every format the scrubber knows. JWTs and PEM blocks are parsed by their own code; their
/// entries only give the trigger.
pub(crate) static FORMATS: &[SecretFormat] = &[
    // OpenAI: project, service-account, admin and legacy user keys.
    key("sk-proj-", Body::Base64Url, 40, 400),
    key("sk-svcacct-", Body::Base64Url, 40, 400),
    key("sk-admin-", Body::Base64Url, 40, 400),
    key("sk-None-", Body::Base64Url, 40, 400),
    key("sk-", Body::Base64Url, 32, 400),
    // Anthropic: API and admin keys (sk-ant-api03-…, sk-ant-admin01-…).
    key("sk-ant-", Body::Base64Url, 32, 400),
    // AWS access key ids: long-term, temporary, STS service bearer, context-specific, and the
    // older `A3T` form.
    key("AKIA", Body::UpperAlnum, 16, 16),
    key("ASIA", Body::UpperAlnum, 16, 16),
    key("ABIA", Body::UpperAlnum, 16, 16),
    key("ACCA", Body::UpperAlnum, 16, 16),
    key("A3T", Body::UpperAlnum, 17, 17),
    // GitHub tokens.
    key("ghp_", Body::Alnum, 36, 251),
    key("gho_", Body::Alnum, 36, 251),
    key("ghu_", Body::Alnum, 36, 251),
    key("ghs_", Body::Alnum, 36, 251),
    key("ghr_", Body::Alnum, 36, 251),
    key("github_pat_", Body::Word, 22, 251),
    // GitLab personal access tokens.
    key("glpat-", Body::Base64Url, 20, 80),
    // Slack bot, user, app, refresh and configuration tokens. Each body opens with a number
    // (a workspace id or a version), which tells them from `xoxb-your-token` in the docs.
    slack("xoxb-"),
    slack("xoxp-"),
    slack("xoxa-"),
    slack("xoxr-"),
    slack("xoxs-"),
    slack("xoxe-"),
    slack("xoxe.xoxp-"),
    slack("xapp-"),
    // Stripe secret and restricted keys, webhook signing secrets.
    key("sk_live_", Body::Alnum, 16, 255),
    key("sk_test_", Body::Alnum, 16, 255),
    key("rk_live_", Body::Alnum, 16, 255),
    key("rk_test_", Body::Alnum, 16, 255),
    key("whsec_", Body::Alnum, 24, 255),
    // Google API keys.
    key("AIza", Body::Base64Url, 35, 35),
    // npm, PyPI, Hugging Face, SendGrid, Shopify, DigitalOcean, Databricks tokens.
    key("npm_", Body::Alnum, 36, 36),
    key("pypi-AgEIcHlwaS5vcmc", Body::Base64Url, 50, 400),
    key("hf_", Body::Alnum, 30, 40),
    key("SG.", Body::Dotted, 60, 80),
    key("shpat_", Body::LowerHex, 32, 32),
    key("shpss_", Body::LowerHex, 32, 32),
    key("shpca_", Body::LowerHex, 32, 32),
    key("shppa_", Body::LowerHex, 32, 32),
    key("dop_v1_", Body::LowerHex, 64, 64),
    key("doo_v1_", Body::LowerHex, 64, 64),
    key("dor_v1_", Body::LowerHex, 64, 64),
    key("dapi", Body::LowerHex, 32, 32),
    // Mailgun API keys, Square access tokens and application secrets.
    key("key-", Body::LowerHex, 32, 32),
    key("sq0atp-", Body::Base64Url, 22, 22),
    key("sq0csp-", Body::Base64Url, 43, 43),
    SecretFormat {
        prefix: "eyJ",
        kind: Kind::Jwt,
        body: Body::Base64Url,
        min: 0,
        max: 0,
        digit_first: false,
    },
    SecretFormat {
        prefix: "-----BEGIN",
        kind: Kind::PrivateKey,
        body: Body::Dotted,
        min: 0,
        max: 0,
        digit_first: false,
    },
];

/// Every prefix of [`FORMATS`], in the order [`search`] hands them to the automaton builder.
///
/// Leftmost-longest matches do not depend on the order, but the SIMD prefilter (Teddy) does: it
/// puts the prefixes into 16 buckets by their place in the list and tests each bucket against the
/// union of its prefixes' first three bytes, so two unlike prefixes in one bucket also fire on
/// blends of the two, which then fail verification. In table order the buckets mix families, and
/// English text and source code fire one about every 50 to 100 bytes. In this order a bucket
/// holds one family or a few alike prefixes (`sk-` with `A3T`, Slack with Shopify), and they
/// fire about every 500 to 1,000 bytes, which halves the cost of a scan of clean prose. A new
/// prefix goes where it fires least; a test checks that the list names every prefix once.
const PREFILTER_ORDER: [&str; 49] = [
    "shpat_",
    "sk-ant-",
    "sk-admin-",
    "sk-None-",
    "sq0atp-",
    "eyJ",
    "ghs_",
    "sk-proj-",
    "doo_v1_",
    "ghp_",
    "whsec_",
    "sk-svcacct-",
    "glpat-",
    "-----BEGIN",
    "AKIA",
    "rk_test_",
    "xoxa-",
    "A3T",
    "hf_",
    "github_pat_",
    "pypi-AgEIcHlwaS5vcmc",
    "ACCA",
    "ghu_",
    "dapi",
    "dor_v1_",
    "shpca_",
    "gho_",
    "key-",
    "npm_",
    "rk_live_",
    "ASIA",
    "sk_test_",
    "xapp-",
    "xoxr-",
    "SG.",
    "sk_live_",
    "shppa_",
    "xoxe-",
    "ghr_",
    "sq0csp-",
    "dop_v1_",
    "AIza",
    "xoxb-",
    "shpss_",
    "sk-",
    "xoxs-",
    "ABIA",
    "xoxe.xoxp-",
    "xoxp-",
];

/// A search for the prefixes of the enabled kinds; it reports pattern ids that index [`FORMATS`].
/// Leftmost-longest, so `sk-ant-` wins over `sk-`, and without overlaps, which keeps the packed
/// (SIMD) prefilter in play for long windows. Short ones go through a DFA.
pub(crate) fn search(kinds: KindSet) -> Option<PrefixSearch> {
    // Disabled kinds get a pattern that cannot occur in a `str`, keeping ids aligned.
    const NEVER: &[u8] = b"\xff\xff";
    let formats = PREFILTER_ORDER
        .iter()
        .map(|&prefix| FORMATS.iter().position(|f| f.prefix == prefix))
        .collect::<Option<Vec<usize>>>()?;
    let patterns: Vec<&[u8]> = formats
        .iter()
        .map(|&i| {
            let f = &FORMATS[i];
            if kinds.contains(f.kind) {
                f.prefix.as_bytes()
            } else {
                NEVER
            }
        })
        .collect();
    let all = AhoCorasickBuilder::new()
        .match_kind(MatchKind::LeftmostLongest)
        .build(&patterns)
        .ok()?;
    // Without a prefilter, start states are not special: the byte loop stops only at matches.
    let dfa = DFABuilder::new()
        .match_kind(MatchKind::LeftmostLongest)
        .prefilter(false)
        .build(&patterns)
        .ok()?;
    PrefixSearch::new(all, dfa, formats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrub::validate;

    #[test]
    fn the_prefilter_order_names_every_prefix_once() {
        let mut order = PREFILTER_ORDER.to_vec();
        order.sort_unstable();
        let mut prefixes: Vec<&str> = FORMATS.iter().map(|f| f.prefix).collect();
        prefixes.sort_unstable();
        assert_eq!(order, prefixes);
    }

    #[test]
    fn every_secret_spans_a_run_of_the_shortest_length() {
        for f in FORMATS {
            let prefix = f.prefix.as_bytes();
            assert!(
                prefix.iter().all(|&c| Body::Dotted.contains(c)),
                "{}",
                f.prefix
            );
            assert!(
                (0..=255u8).all(|c| !f.body.contains(c) || Body::Dotted.contains(c)),
                "{}",
                f.prefix
            );
            match f.kind {
                Kind::PrivateKey => assert!(prefix.len() >= SHORTEST),
                // Checked below: two groups of four, a dot and a byte.
                Kind::Jwt => assert_eq!(f.prefix, "eyJ"),
                _ => assert!(prefix.len() + f.min >= SHORTEST, "{}", f.prefix),
            }
        }
        // A JWT header shorter than two groups has no group that decodes to `"alg"`, whatever
        // follows `eyJ`: every character of the three `alg` groups, and padding, in every place.
        let alphabet = b"ImFsbGciYWxnJ=";
        for len in 0..=4 {
            let mut idx = vec![0usize; len];
            loop {
                let mut head = b"eyJ".to_vec();
                head.extend(idx.iter().map(|&k| alphabet[k]));
                assert!(!validate::jwt_header_ok(&head), "{head:?}");
                let Some(k) = idx.iter().rposition(|&k| k + 1 < alphabet.len()) else {
                    break;
                };
                idx[k] += 1;
                idx[k + 1..].iter_mut().for_each(|k| *k = 0);
            }
        }
    }
}
