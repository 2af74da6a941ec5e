//! Pure, allocation-free validators for candidate PII matches.
//!
//! Every function in this module:
//!
//! * operates on ASCII bytes (or small integers) only and never allocates;
//! * is total: it never panics, whatever bytes it is given (inputs that
//!   violate a documented caller guarantee simply yield `false`/`None`);
//! * runs in time linear in its input, using constant lookup tables or
//!   `match` instead of hashing, so it is cheap enough for the scanner's
//!   hot path;
//! * has no side effects (no I/O, no logging, no global state).
//!
//! The validators answer "is this plausibly a real identifier?" (checksums,
//! issuer prefixes, registry lengths, numbering-plan rules). They do not
//! locate candidates; that is the scanner's job.

// ---------------------------------------------------------------------------
// Payment cards
// ---------------------------------------------------------------------------

/// `LUHN_DOUBLE[d]` is the Luhn contribution of digit `d` in a doubled
/// position (`2d`, minus 9 when that exceeds 9).
const LUHN_DOUBLE: [u8; 10] = [0, 2, 4, 6, 8, 1, 3, 5, 7, 9];

/// Standard Luhn (mod-10) check over ASCII decimal digits.
///
/// The caller guarantees `digits` contains only `b'0'..=b'9'`; any other byte
/// makes the check fail rather than panic. Returns `false` for an empty slice.
pub(crate) fn luhn(digits: &[u8]) -> bool {
    if digits.is_empty() {
        return false;
    }
    let mut sum: u32 = 0;
    let mut double = false;
    for &b in digits.iter().rev() {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return false;
        }
        let v = if double {
            LUHN_DOUBLE[usize::from(d)]
        } else {
            d
        };
        sum += u32::from(v);
        double = !double;
    }
    sum % 10 == 0
}

/// Numeric value of the first `n` ASCII digits of `digits`.
///
/// The caller ensures `n <= digits.len()`, `n <= 9` and that the bytes are
/// ASCII digits; extra or non-digit bytes only produce a meaningless value.
#[inline]
fn prefix_value(digits: &[u8], n: usize) -> u32 {
    digits.iter().take(n).fold(0u32, |acc, &b| {
        acc * 10 + u32::from(b.wrapping_sub(b'0') % 10)
    })
}

/// Whether a 12–19 digit card number has a known issuer prefix with a length
/// that issuer actually uses.
///
/// Recognised issuers (prefix → lengths): Visa `4` → 13, 16, 19; Mastercard
/// 51–55 and 2221–2720 → 16; Mir 2200–2204 → 16–19; American Express 34, 37
/// → 15; Discover 6011, 644–649, 65, 622126–622925 → 16–19; JCB 3528–3589 →
/// 16–19; Diners Club 300–305, 3095, 36, 38, 39 → 14–19; UnionPay 62 →
/// 16–19; Maestro 50, 56–69, 6304, 6759, 676770, 676774 → 12–19.
///
/// The caller guarantees ASCII digits; a length outside 12..=19 or any
/// non-digit byte yields `false`. The Luhn check is not performed here.
pub(crate) fn card_brand_ok(digits: &[u8]) -> bool {
    let len = digits.len();
    if !(12..=19).contains(&len) || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    // Every digit is checked and there are at least twelve: the shorter prefixes are the
    // six-digit one divided down.
    let p6 = prefix_value(digits, 6);
    let p4 = p6 / 100;
    let p3 = p6 / 1000;
    let p2 = p6 / 10_000;
    let p1 = p6 / 100_000;
    let long = (16..=19).contains(&len);

    // Visa
    (p1 == 4 && matches!(len, 13 | 16 | 19))
        // Mastercard
        || (len == 16 && ((51..=55).contains(&p2) || (2221..=2720).contains(&p4)))
        // Mir
        || (long && (2200..=2204).contains(&p4))
        // American Express
        || (len == 15 && matches!(p2, 34 | 37))
        // Discover
        || (long
            && (p4 == 6011
                || (644..=649).contains(&p3)
                || p2 == 65
                || (622_126..=622_925).contains(&p6)))
        // JCB
        || (long && (3528..=3589).contains(&p4))
        // Diners Club
        || (len >= 14
            && ((300..=305).contains(&p3) || p4 == 3095 || matches!(p2, 36 | 38 | 39)))
        // UnionPay
        || (long && p2 == 62)
        // Maestro (12..=19 already established above)
        || (p2 == 50
            || (56..=69).contains(&p2)
            || p4 == 6304
            || p4 == 6759
            || matches!(p6, 676_770 | 676_774))
}

// ---------------------------------------------------------------------------
// IBAN
// ---------------------------------------------------------------------------

/// Country code → total IBAN length, per the SWIFT IBAN registry.
const IBAN_LENGTHS: [([u8; 2], u8); 89] = [
    (*b"AD", 24),
    (*b"AE", 23),
    (*b"AL", 28),
    (*b"AT", 20),
    (*b"AZ", 28),
    (*b"BA", 20),
    (*b"BE", 16),
    (*b"BG", 22),
    (*b"BH", 22),
    (*b"BI", 27),
    (*b"BR", 29),
    (*b"BY", 28),
    (*b"CH", 21),
    (*b"CR", 22),
    (*b"CY", 28),
    (*b"CZ", 24),
    (*b"DE", 22),
    (*b"DJ", 27),
    (*b"DK", 18),
    (*b"DO", 28),
    (*b"EE", 20),
    (*b"EG", 29),
    (*b"ES", 24),
    (*b"FI", 18),
    (*b"FK", 18),
    (*b"FO", 18),
    (*b"FR", 27),
    (*b"GB", 22),
    (*b"GE", 22),
    (*b"GI", 23),
    (*b"GL", 18),
    (*b"GR", 27),
    (*b"GT", 28),
    (*b"HN", 28),
    (*b"HR", 21),
    (*b"HU", 28),
    (*b"IE", 22),
    (*b"IL", 23),
    (*b"IQ", 23),
    (*b"IS", 26),
    (*b"IT", 27),
    (*b"JO", 30),
    (*b"KW", 30),
    (*b"KZ", 20),
    (*b"LB", 28),
    (*b"LC", 32),
    (*b"LI", 21),
    (*b"LT", 20),
    (*b"LU", 20),
    (*b"LV", 21),
    (*b"LY", 25),
    (*b"MC", 27),
    (*b"MD", 24),
    (*b"ME", 22),
    (*b"MK", 19),
    (*b"MN", 20),
    (*b"MR", 27),
    (*b"MT", 31),
    (*b"MU", 30),
    (*b"NI", 28),
    (*b"NL", 18),
    (*b"NO", 15),
    (*b"PT", 25),
    (*b"OM", 23),
    (*b"PK", 24),
    (*b"PL", 28),
    (*b"PS", 29),
    (*b"QA", 29),
    (*b"RO", 24),
    (*b"RS", 22),
    (*b"RU", 33),
    (*b"SA", 24),
    (*b"SC", 31),
    (*b"SD", 18),
    (*b"SE", 24),
    (*b"SI", 19),
    (*b"SK", 24),
    (*b"SM", 27),
    (*b"SO", 23),
    (*b"ST", 25),
    (*b"SV", 28),
    (*b"TL", 23),
    (*b"TN", 24),
    (*b"TR", 26),
    (*b"UA", 29),
    (*b"VA", 22),
    (*b"VG", 24),
    (*b"XK", 20),
    (*b"YE", 30),
];

/// Dense 26×26 lookup built from [`IBAN_LENGTHS`]; 0 means "not in registry".
const IBAN_TABLE: [u8; 26 * 26] = {
    let mut table = [0u8; 26 * 26];
    let mut i = 0;
    while i < IBAN_LENGTHS.len() {
        let (cc, len) = IBAN_LENGTHS[i];
        let idx = (cc[0] - b'A') as usize * 26 + (cc[1] - b'A') as usize;
        // A duplicate entry would be a table bug: fail the build.
        assert!(table[idx] == 0);
        table[idx] = len;
        i += 1;
    }
    table
};

/// Total IBAN length (country code and check digits included) for an
/// uppercase ASCII country code, or `None` if the country is not in the SWIFT
/// IBAN registry (lowercase or non-letter input also yields `None`).
pub(crate) fn iban_length(country: [u8; 2]) -> Option<u8> {
    let [a, b] = country;
    if !a.is_ascii_uppercase() || !b.is_ascii_uppercase() {
        return None;
    }
    let len = IBAN_TABLE[usize::from(a - b'A') * 26 + usize::from(b - b'A')];
    (len != 0).then_some(len)
}

/// ISO 13616 / ISO 7064 mod-97-10 check of a compact IBAN (no spaces).
///
/// The first four characters are moved to the end, letters become 10..=35
/// (case-insensitive) and the resulting decimal number is reduced modulo 97
/// incrementally. Returns `true` iff the remainder is 1. Any byte that is not
/// an ASCII letter or digit, or a length below 5, yields `false`.
pub(crate) fn iban_mod97(iban: &[u8]) -> bool {
    /// Reduced only once it reaches this: a further letter keeps it below `u64::MAX`.
    const REDUCE_AT: u64 = 1 << 56;
    if iban.len() < 5 {
        return false;
    }
    let (head, tail) = iban.split_at(4);
    let mut rem: u64 = 0;
    // Two plain loops rather than one over a chain: this runs for every IBAN-shaped candidate.
    for part in [tail, head] {
        for &b in part {
            let v = MOD97_VALUE[usize::from(b)];
            rem = match v {
                0..=9 => rem * 10 + u64::from(v),
                10..=35 => rem * 100 + u64::from(v),
                _ => return false,
            };
            if rem >= REDUCE_AT {
                rem %= 97;
            }
        }
    }
    rem % 97 == 1
}

/// The value of a byte in a mod-97 check: digits 0–9, letters of either case 10–35, and
/// [`u8::MAX`] for anything else.
static MOD97_VALUE: [u8; 256] = {
    let mut t = [u8::MAX; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = match b {
            b'0'..=b'9' => b - b'0',
            b'A'..=b'Z' => b - b'A' + 10,
            b'a'..=b'z' => b - b'a' + 10,
            _ => u8::MAX,
        };
        c += 1;
    }
    t
};

// ---------------------------------------------------------------------------
// US Social Security Number
// ---------------------------------------------------------------------------

/// US SSN structural rules for `AAA-GG-SSSS`: area not 000, 666 or 900–999;
/// group not 00; serial not 0000.
///
/// Values that cannot come from the fixed-width fields (group > 99, serial
/// > 9999) are also rejected.
pub(crate) fn ssn_ok(area: u16, group: u8, serial: u16) -> bool {
    area != 0
        && area != 666
        && area < 900
        && (1..=99).contains(&group)
        && (1..=9999).contains(&serial)
}

// ---------------------------------------------------------------------------
// North American Numbering Plan
// ---------------------------------------------------------------------------

/// Whether ten ASCII digits form a plausible NANP number `NPA-NXX-XXXX`:
/// area code and exchange both start with 2–9, and the area code is not an
/// `N11` service code (211, 311, …, 911).
///
/// Returns `false` unless `digits10` is exactly ten ASCII digits.
pub(crate) fn nanp_ok(digits10: &[u8]) -> bool {
    let [a0, a1, a2, e0, ..] = *digits10 else {
        return false;
    };
    digits10.len() == 10
        && digits10.iter().all(u8::is_ascii_digit)
        && (b'2'..=b'9').contains(&a0)
        && (b'2'..=b'9').contains(&e0)
        && !(a1 == b'1' && a2 == b'1')
}

// ---------------------------------------------------------------------------
// ITU-T E.164 country calling codes
// ---------------------------------------------------------------------------

/// Marker in [`CALLING_CODES`]: the two-digit prefix is itself a country code.
const CC_TWO_DIGIT: u16 = 1 << 15;

/// Bit mask with bit `d` set for every third digit `d` in `ds`.
const fn third_digits(ds: &[u8]) -> u16 {
    let mut mask = 0u16;
    let mut i = 0;
    while i < ds.len() {
        mask |= 1 << ds[i];
        i += 1;
    }
    mask
}

/// Every third digit 0–9.
const CC_ALL: u16 = 0x03FF;

/// Indexed by the first two digits (00..=99) of the number after `+`.
///
/// Value [`CC_TWO_DIGIT`]: a two-digit code. Otherwise a bit mask of the third
/// digits that complete an assigned three-digit code (0 = nothing assigned).
/// Zones 1 (NANP) and 7 (Russia/Kazakhstan) are single-digit codes and are
/// handled before this table is consulted.
const CALLING_CODES: [u16; 100] = {
    let two = CC_TWO_DIGIT;
    let mut t = [0u16; 100];
    // Zone 2: Africa, plus a few Atlantic territories.
    t[20] = two; // Egypt
    t[21] = third_digits(&[1, 2, 3, 6, 8]); // SS, MA, DZ, TN, LY
    t[22] = CC_ALL; // 220 Gambia … 229 Benin
    t[23] = CC_ALL; // 230 Mauritius … 239 São Tomé and Príncipe
    t[24] = CC_ALL; // 240 Equatorial Guinea … 249 Sudan
    t[25] = third_digits(&[0, 1, 2, 3, 4, 5, 6, 7, 8]); // 259 spare
    t[26] = CC_ALL; // 260 Zambia … 269 Comoros
    t[27] = two; // South Africa
                 // 28x spare
    t[29] = third_digits(&[0, 1, 7, 8, 9]); // SH, ER, AW, FO, GL
                                            // Zone 3: Europe.
    t[30] = two; // Greece
    t[31] = two; // Netherlands
    t[32] = two; // Belgium
    t[33] = two; // France
    t[34] = two; // Spain
    t[35] = CC_ALL; // 350 Gibraltar … 359 Bulgaria
    t[36] = two; // Hungary
    t[37] = CC_ALL; // 370 Lithuania … 379 Vatican City
    t[38] = third_digits(&[0, 1, 2, 3, 5, 6, 7, 9]); // 384, 388 spare
    t[39] = two; // Italy
                 // Zone 4: Europe.
    t[40] = two; // Romania
    t[41] = two; // Switzerland
    t[42] = third_digits(&[0, 1, 3]); // CZ, SK, LI
    t[43] = two; // Austria
    t[44] = two; // United Kingdom
    t[45] = two; // Denmark
    t[46] = two; // Sweden
    t[47] = two; // Norway
    t[48] = two; // Poland
    t[49] = two; // Germany
                 // Zone 5: Central and South America.
    t[50] = CC_ALL; // 500 Falklands … 509 Haiti
    t[51] = two; // Peru
    t[52] = two; // Mexico
    t[53] = two; // Cuba
    t[54] = two; // Argentina
    t[55] = two; // Brazil
    t[56] = two; // Chile
    t[57] = two; // Colombia
    t[58] = two; // Venezuela
    t[59] = CC_ALL; // 590 Guadeloupe … 599 Curaçao / Caribbean Netherlands
                    // Zone 6: South-East Asia and Oceania.
    t[60] = two; // Malaysia
    t[61] = two; // Australia
    t[62] = two; // Indonesia
    t[63] = two; // Philippines
    t[64] = two; // New Zealand
    t[65] = two; // Singapore
    t[66] = two; // Thailand
    t[67] = third_digits(&[0, 2, 3, 4, 5, 6, 7, 8, 9]); // 671 spare
    t[68] = third_digits(&[0, 1, 2, 3, 5, 6, 7, 8, 9]); // 684 spare
    t[69] = third_digits(&[0, 1, 2]); // TK, FM, MH
                                      // Zone 8: East Asia and international services.
    t[80] = third_digits(&[0, 8]); // freephone, shared cost
    t[81] = two; // Japan
    t[82] = two; // South Korea
                 // 83x spare
    t[84] = two; // Vietnam
    t[85] = third_digits(&[0, 2, 3, 5, 6]); // KP, HK, MO, KH, LA
    t[86] = two; // China
    t[87] = third_digits(&[0, 8]); // Inmarsat, UPT
    t[88] = third_digits(&[0, 1, 2, 3, 6, 8]); // BD, GMSS, networks, TW, OCHA
                                               // 89x spare
                                               // Zone 9: West, Central and South Asia.
    t[90] = two; // Turkey
    t[91] = two; // India
    t[92] = two; // Pakistan
    t[93] = two; // Afghanistan
    t[94] = two; // Sri Lanka
    t[95] = two; // Myanmar
    t[96] = third_digits(&[0, 1, 2, 3, 4, 5, 6, 7, 8]); // 969 spare
    t[97] = third_digits(&[0, 1, 2, 3, 4, 5, 6, 7, 9]); // 978 spare
    t[98] = two; // Iran
    t[99] = third_digits(&[1, 2, 3, 4, 5, 6, 7, 8]); // 990, 999 spare
    t
};

/// Length (1, 2 or 3) of the ITU-T E.164 country calling code that `digits`
/// (the ASCII digits following a `+`) starts with.
///
/// E.164 codes are prefix-free, so at most one code can match. Returns `None`
/// if the leading digits form a spare/unassigned code, if more digits are
/// needed than are present, or if a non-digit byte is reached before the code
/// is complete.
pub(crate) fn country_calling_code(digits: &[u8]) -> Option<usize> {
    let d0 = digits.first()?.wrapping_sub(b'0');
    match d0 {
        1 | 7 => return Some(1),
        2..=9 => {}
        _ => return None,
    }
    let d1 = digits.get(1)?.wrapping_sub(b'0');
    if d1 > 9 {
        return None;
    }
    let entry = CALLING_CODES[usize::from(d0) * 10 + usize::from(d1)];
    if entry == CC_TWO_DIGIT {
        return Some(2);
    }
    let d2 = digits.get(2)?.wrapping_sub(b'0');
    (d2 <= 9 && entry & (1 << d2) != 0).then_some(3)
}

// ---------------------------------------------------------------------------
// JSON Web Token
// ---------------------------------------------------------------------------

/// Longest JWT header segment (in base64url characters) that is decoded.
const JWT_MAX_SEGMENT: usize = 512;

/// Marker for bytes outside the base64url alphabet in [`B64URL_DECODE`].
const B64_INVALID: u8 = 0xFF;
/// A bit set in [`B64_INVALID`] and in no value of the alphabet (`0..64`).
const B64_INVALID_BIT: u8 = 0x80;

/// base64url alphabet (RFC 4648 §5) reverse lookup.
const B64URL_DECODE: [u8; 256] = {
    let mut t = [B64_INVALID; 256];
    let mut i = 0u8;
    while i < 26 {
        t[(b'A' + i) as usize] = i;
        t[(b'a' + i) as usize] = 26 + i;
        i += 1;
    }
    let mut d = 0u8;
    while d < 10 {
        t[(b'0' + d) as usize] = 52 + d;
        d += 1;
    }
    t[b'-' as usize] = 62;
    t[b'_' as usize] = 63;
    t
};

/// Whether `segment` (the part of a JWT before the first `.`) is a base64url
/// encoded JSON object header containing an `"alg"` key.
///
/// Up to two trailing `=` padding characters are tolerated. Segments longer
/// than 512 bytes, containing bytes outside the base64url alphabet, or with an
/// impossible length (1 mod 4) are rejected. The decoded bytes, trimmed of
/// ASCII whitespace, must start with `{`, end with `}` and contain `"alg"`.
/// Decoding uses a fixed stack buffer; nothing is allocated.
pub(crate) fn jwt_header_ok(segment: &[u8]) -> bool {
    if segment.len() > JWT_MAX_SEGMENT {
        return false;
    }
    let mut body = segment;
    for _ in 0..2 {
        if let [rest @ .., b'='] = body {
            body = rest;
        }
    }
    if body.len() % 4 == 1 {
        return false;
    }

    // Decoded, `"alg"` fills a whole group of four characters, whichever of the three places
    // in a group of three bytes it starts at: `"al`, `lg"` or `alg`. A segment without one of
    // those groups (the payload of a JWT, also met at its `eyJ`) is not decoded.
    let alg_group = |q: &[u8]| q == b"ImFs" || q == b"bGci" || q == b"YWxn";
    if !body.chunks_exact(4).any(alg_group) {
        return false;
    }

    // Four characters at a time. Only a leftover of two or three characters takes the slow road.
    let mut buf = [0u8; JWT_MAX_SEGMENT / 4 * 3];
    let mut out = 0;
    let mut quads = body.chunks_exact(4);
    for (quad, slot) in (&mut quads).zip(buf.chunks_exact_mut(3)) {
        let v = [0, 1, 2, 3].map(|k| B64URL_DECODE[usize::from(quad[k])]);
        if (v[0] | v[1] | v[2] | v[3]) & B64_INVALID_BIT != 0 {
            return false;
        }
        let n = v.iter().fold(0u32, |n, &v| (n << 6) | u32::from(v));
        slot.copy_from_slice(&n.to_be_bytes()[1..]);
        out += 3;
    }
    let rest = quads.remainder();
    let mut acc: u32 = 0;
    for &c in rest {
        let v = B64URL_DECODE[usize::from(c)];
        if v == B64_INVALID {
            return false;
        }
        acc = (acc << 6) | u32::from(v);
    }
    // Two characters carry one byte and three carry two; the bits left over are dropped.
    let tail = match rest.len() {
        2 => [(acc >> 4) as u8, 0],
        3 => [(acc >> 10) as u8, (acc >> 2) as u8],
        _ => [0, 0],
    };
    let tail_len = rest.len().saturating_sub(1);
    match buf.get_mut(out..out + tail_len) {
        Some(slots) => slots.copy_from_slice(&tail[..tail_len]),
        None => return false,
    }
    out += tail_len;

    let decoded = buf.get(..out).unwrap_or(&[]).trim_ascii();
    decoded.len() >= 2
        && decoded.first() == Some(&b'{')
        && decoded.last() == Some(&b'}')
        && (0..decoded.len()).any(|i| decoded[i] == b'"' && decoded[i..].starts_with(b"\"alg\""))
}

// ---------------------------------------------------------------------------
// IPv4
// ---------------------------------------------------------------------------

/// Parse one dotted-quad IPv4 octet: 1–3 ASCII digits, no leading zero unless
/// the octet is exactly `"0"`, value at most 255.
pub(crate) fn ipv4_octet(digits: &[u8]) -> Option<u8> {
    match *digits {
        [a] if a.is_ascii_digit() => Some(a - b'0'),
        [a @ b'1'..=b'9', b] if b.is_ascii_digit() => Some((a - b'0') * 10 + (b - b'0')),
        [a @ b'1'..=b'9', b, c] if b.is_ascii_digit() && c.is_ascii_digit() => {
            let v = u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0');
            u8::try_from(v).ok()
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// IPv6
// ---------------------------------------------------------------------------

/// End of a group of one to four hex digits at `i`, as the standard library reads one: a fifth
/// digit makes it no group at all.
fn ipv6_group(s: &[u8], i: usize) -> Option<usize> {
    let n = s
        .get(i..)
        .unwrap_or_default()
        .iter()
        .take(5)
        .take_while(|c| c.is_ascii_hexdigit())
        .count();
    (1..=4).contains(&n).then_some(i + n)
}

/// End of a dotted-quad IPv4 address at `i`, octets as [`ipv4_octet`] reads them.
fn ipv4_at(s: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    for octet in 0..4 {
        if octet > 0 {
            if s.get(j) != Some(&b'.') {
                return None;
            }
            j += 1;
        }
        let n = s
            .get(j..)
            .unwrap_or_default()
            .iter()
            .take(4)
            .take_while(|c| c.is_ascii_digit())
            .count();
        ipv4_octet(s.get(j..j + n)?)?;
        j += n;
    }
    Some(j)
}

/// Reads up to `limit` `:`-separated groups from `i`; the last two may be an IPv4 address.
/// Returns how many groups were read, whether an IPv4 address was, and where reading stopped.
fn ipv6_groups(s: &[u8], mut i: usize, limit: usize) -> (usize, bool, usize) {
    for n in 0..limit {
        let mut j = i;
        if n > 0 {
            if s.get(j) != Some(&b':') {
                return (n, false, i);
            }
            j += 1;
        }
        // An IPv4 address has a `.` right after its first octet: without one, [`ipv4_at`] would
        // answer `None`.
        let first_octet = s.get(j..).unwrap_or_default().iter().take(4);
        let dotted =
            s.get(j + first_octet.take_while(|c| c.is_ascii_digit()).count()) == Some(&b'.');
        if n + 1 < limit && dotted {
            if let Some(e) = ipv4_at(s, j) {
                return (n + 2, true, e);
            }
        }
        match ipv6_group(s, j) {
            Some(e) => i = e,
            None => return (n, false, i),
        }
    }
    (limit, false, i)
}

/// Whether `s` is an IPv6 address in text form, exactly as `std::net::Ipv6Addr` parses one:
/// eight groups of one to four hex digits, or fewer with one `::` standing for at least one zero
/// group; the last two groups may be written as an IPv4 address, but not before the `::`.
pub(crate) fn ipv6_ok(s: &[u8]) -> bool {
    let (head, head_ipv4, i) = ipv6_groups(s, 0, 8);
    if head == 8 {
        return i == s.len();
    }
    if head_ipv4 || s.get(i..i + 2) != Some(b"::") {
        return false;
    }
    let (_, _, end) = ipv6_groups(s, i + 2, 7 - head);
    end == s.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_table() {
        let cases: &[(&[u8], bool)] = &[
            (b"4111111111111111", true),
            (b"5555555555554444", true),
            (b"2223003122003222", true),
            (b"378282246310005", true),
            (b"6011111111111117", true),
            (b"3530111333300000", true),
            (b"36227206271667", true),
            (b"6200000000000005", true),
            (b"6759649826438453", true),
            (b"79927398713", true),
            (b"0", true),
            (b"", false),
            (b"4111111111111112", false),
            (b"5555555555554445", false),
            (b"378282246310006", false),
            (b"79927398710", false),
            (b"41111111111111x1", false),
        ];
        for &(input, want) in cases {
            assert_eq!(
                luhn(input),
                want,
                "luhn({:?})",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn card_brand_table() {
        let cases: &[(&[u8], bool)] = &[
            // Known test cards.
            (b"4111111111111111", true),    // Visa 16
            (b"4222222222222", true),       // Visa 13
            (b"4111111111111111110", true), // Visa 19
            (b"5555555555554444", true),    // Mastercard
            (b"2223003122003222", true),    // Mastercard 2-series
            (b"2720990000000000", true),    // Mastercard upper bound
            (b"2200000000000004", true),    // Mir 16
            (b"2204000000000000000", true), // Mir 19
            (b"378282246310005", true),     // Amex
            (b"341111111111111", true),     // Amex 34
            (b"6011111111111117", true),    // Discover
            (b"6441111111111111", true),    // Discover 644
            (b"6221260000000000", true),    // Discover/UnionPay co-brand
            (b"3530111333300000", true),    // JCB
            (b"3589000000000000000", true), // JCB 19
            (b"36227206271667", true),      // Diners 14
            (b"30500000000000", true),      // Diners 305
            (b"30950000000000", true),      // Diners 3095
            (b"3000000000000000000", true), // Diners 19
            (b"6200000000000005", true),    // UnionPay
            (b"6759649826438453", true),    // Maestro
            (b"501800000000", true),        // Maestro 12
            (b"6304000000000000", true),    // Maestro 6304
            // Wrong lengths for the brand.
            (b"41111111111111", false),    // Visa 14
            (b"411111111111111", false),   // Visa 15
            (b"41111111111111111", false), // Visa 17
            (b"555555555555444", false),   // Mastercard 15
            (b"55555555555544444", false), // Mastercard 17
            (b"2221000000000", false),     // Mastercard 13
            (b"3782822463100050", false),  // Amex 16
            (b"37828224631000", false),    // Amex 14
            (b"352811111111111", false),   // JCB 15
            (b"3000000000000", false),     // Diners 13
            (b"220000000000000", false),   // Mir 15
            // Bad brand / prefix.
            (b"1234567890123456", false),
            (b"9111111111111111", false),
            (b"0111111111111111", false),
            (b"2100000000000000", false),
            (b"2721000000000000", false),
            (b"3100000000000000", false),
            (b"3527000000000000", false),
            (b"7000000000000000", false),
            (b"8000000000000000", false),
            // Outside 12..=19 or not digits.
            (b"41111111111", false),
            (b"41111111111111111111", false),
            (b"411111111111111a", false),
            (b"", false),
        ];
        for &(input, want) in cases {
            assert_eq!(
                card_brand_ok(input),
                want,
                "card_brand_ok({:?})",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn iban_length_table() {
        let cases: &[([u8; 2], Option<u8>)] = &[
            (*b"GB", Some(22)),
            (*b"DE", Some(22)),
            (*b"FR", Some(27)),
            (*b"NL", Some(18)),
            (*b"NO", Some(15)),
            (*b"RU", Some(33)),
            (*b"LC", Some(32)),
            (*b"AD", Some(24)),
            (*b"YE", Some(30)),
            (*b"XK", Some(20)),
            (*b"US", None),
            (*b"ZZ", None),
            (*b"AA", None),
            (*b"gb", None),
            (*b"G1", None),
            ([0, 0], None),
            ([0xFF, 0xFF], None),
        ];
        for &(cc, want) in cases {
            assert_eq!(iban_length(cc), want, "iban_length({cc:?})");
        }
    }

    #[test]
    fn iban_registry_consistent() {
        let mut count = 0;
        for &(cc, len) in &IBAN_LENGTHS {
            assert!((15..=34).contains(&len), "{cc:?} length {len}");
            assert_eq!(iban_length(cc), Some(len));
            count += 1;
        }
        let nonzero = IBAN_TABLE.iter().filter(|&&l| l != 0).count();
        assert_eq!(nonzero, count);
    }

    #[test]
    fn iban_mod97_table() {
        let cases: &[(&[u8], bool)] = &[
            (b"GB82WEST12345698765432", true),
            (b"DE89370400440532013000", true),
            (b"FR1420041010050500013M02606", true),
            (b"NL91ABNA0417164300", true),
            (b"gb82west12345698765432", true),
            (b"fr1420041010050500013m02606", true),
            (b"GB83WEST12345698765432", false),
            (b"DE89370400440532013001", false),
            (b"NL91ABNA0417164301", false),
            (b"GB82 WEST12345698765432", false),
            (b"GB82-WEST12345698765432", false),
            (b"GB82", false),
            (b"", false),
            (b"GB82WEST1234569876543\xC3", false),
        ];
        for &(input, want) in cases {
            assert_eq!(
                iban_mod97(input),
                want,
                "iban_mod97({:?})",
                String::from_utf8_lossy(input)
            );
        }
        // Samples also have the registry length.
        for iban in [
            &b"GB82WEST12345698765432"[..],
            b"DE89370400440532013000",
            b"FR1420041010050500013M02606",
            b"NL91ABNA0417164300",
        ] {
            assert_eq!(
                iban_length([iban[0], iban[1]]).map(usize::from),
                Some(iban.len())
            );
        }
    }

    #[test]
    fn ssn_table() {
        let cases: &[(u16, u8, u16, bool)] = &[
            (123, 45, 6789, true),
            (1, 1, 1, true),
            (665, 99, 9999, true),
            (667, 1, 1, true),
            (899, 99, 9999, true),
            (0, 45, 6789, false),
            (666, 45, 6789, false),
            (900, 45, 6789, false),
            (999, 45, 6789, false),
            (1000, 45, 6789, false),
            (123, 0, 6789, false),
            (123, 100, 6789, false),
            (123, 45, 0, false),
            (123, 45, 10000, false),
        ];
        for &(a, g, s, want) in cases {
            assert_eq!(ssn_ok(a, g, s), want, "ssn_ok({a}, {g}, {s})");
        }
    }

    #[test]
    fn nanp_table() {
        let cases: &[(&[u8], bool)] = &[
            (b"2125551234", true),
            (b"4155550100", true),
            (b"9995550100", true),
            (b"2102000000", true),
            (b"2212000000", true),
            (b"9112000000", false),  // N11 area code
            (b"2115551234", false),  // N11 area code
            (b"4115551234", false),  // N11 area code
            (b"1125551234", false),  // area starts with 1
            (b"0125551234", false),  // area starts with 0
            (b"2121551234", false),  // exchange starts with 1
            (b"2120551234", false),  // exchange starts with 0
            (b"212555123", false),   // 9 digits
            (b"21255512345", false), // 11 digits
            (b"212555123a", false),
            (b"212-555-12", false),
            (b"", false),
        ];
        for &(input, want) in cases {
            assert_eq!(
                nanp_ok(input),
                want,
                "nanp_ok({:?})",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn calling_code_table() {
        let cases: &[(&[u8], Option<usize>)] = &[
            (b"1", Some(1)),
            (b"12125551234", Some(1)),
            (b"7", Some(1)),
            (b"74951234567", Some(1)),
            (b"44", Some(2)),
            (b"442071234567", Some(2)),
            (b"49301234567", Some(2)),
            (b"20", Some(2)),
            (b"27", Some(2)),
            (b"33", Some(2)),
            (b"86", Some(2)),
            (b"98", Some(2)),
            (b"351", Some(3)),
            (b"351211234567", Some(3)),
            (b"880", Some(3)),
            (b"211", Some(3)),
            (b"212", Some(3)),
            (b"213", Some(3)),
            (b"216", Some(3)),
            (b"218", Some(3)),
            (b"299", Some(3)),
            (b"379", Some(3)),
            (b"423", Some(3)),
            (b"500", Some(3)),
            (b"599", Some(3)),
            (b"692", Some(3)),
            (b"800", Some(3)),
            (b"808", Some(3)),
            (b"852", Some(3)),
            (b"870", Some(3)),
            (b"882", Some(3)),
            (b"888", Some(3)),
            (b"971", Some(3)),
            (b"979", Some(3)),
            (b"998", Some(3)),
            // Spare / unassigned.
            (b"210", None),
            (b"214", None),
            (b"259", None),
            (b"280", None),
            (b"289", None),
            (b"292", None),
            (b"384", None),
            (b"388", None),
            (b"422", None),
            (b"671", None),
            (b"684", None),
            (b"693", None),
            (b"801", None),
            (b"809", None),
            (b"830", None),
            (b"839", None),
            (b"851", None),
            (b"871", None),
            (b"884", None),
            (b"890", None),
            (b"969", None),
            (b"978", None),
            (b"990", None),
            (b"999", None),
            (b"0", None),
            (b"0044", None),
            // Not enough digits / non-digits.
            (b"", None),
            (b"2", None),
            (b"4", None),
            (b"21", None),
            (b"35", None),
            (b"4a", None),
            (b"35x", None),
            (b"+44", None),
            (b" 44", None),
        ];
        for &(input, want) in cases {
            assert_eq!(
                country_calling_code(input),
                want,
                "country_calling_code({:?})",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn calling_code_prefix_free() {
        // No two-digit code may also have three-digit extensions, and
        // single-digit zones must not appear in the table.
        for (i, &entry) in CALLING_CODES.iter().enumerate() {
            assert!(entry == CC_TWO_DIGIT || entry & !CC_ALL == 0, "entry {i}");
            if i / 10 <= 1 || i / 10 == 7 {
                assert_eq!(entry, 0, "entry {i}");
            }
        }
    }

    #[test]
    fn jwt_header_table() {
        let long = [b'A'; JWT_MAX_SEGMENT + 1];
        let cases: &[(&[u8], bool)] = &[
            (b"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9", true),
            (b"eyJhbGciOiJub25lIn0=", true), // {"alg":"none"} padded
            (b"eyJhbGciOiJub25lIn0", true),  // unpadded
            (b"IHsiYWxnIjoiSFMyNTYifSAK", true), // whitespace around object
            (b"eyJ0eXAiOiJKV1QifQ==", false), // {"typ":"JWT"}: no alg
            (b"eyJ0eXAiOiJKV1QifQ", false),
            (b"aGVsbG8gd29ybGQ", false), // "hello world"
            (b"aGVsbG8gd29ybGQ=", false),
            (b"WyJhbGciXQ==", false),                          // ["alg"]
            (b"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9+", false), // std alphabet
            (b"eyJhbGciOiJIUzI1NiIsInR5cCI6Ik.XVCJ9", false),
            (b"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ", false), // truncated object
            (b"eyJhb", false),                               // length 1 mod 4
            (b"", false),
            (b"====", false),
            (&long, false),
        ];
        for &(input, want) in cases {
            assert_eq!(
                jwt_header_ok(input),
                want,
                "jwt_header_ok({:?})",
                String::from_utf8_lossy(input)
            );
        }
    }

    /// The four-at-a-time decoder reads what a plain six-bits-at-a-time decoder reads, for every
    /// length and leftover, with the alphabet's edges and invalid bytes in every position.
    #[test]
    fn jwt_header_decodes_like_a_plain_decoder() {
        fn plain(segment: &[u8]) -> bool {
            let mut body = segment;
            for _ in 0..2 {
                if let [rest @ .., b'='] = body {
                    body = rest;
                }
            }
            if segment.len() > JWT_MAX_SEGMENT || body.len() % 4 == 1 {
                return false;
            }
            let (mut decoded, mut acc, mut bits) = (Vec::new(), 0u32, 0);
            for &c in body {
                let v = B64URL_DECODE[usize::from(c)];
                if v == B64_INVALID {
                    return false;
                }
                acc = (acc << 6) | u32::from(v);
                bits += 6;
                if bits >= 8 {
                    bits -= 8;
                    decoded.push((acc >> bits) as u8);
                    acc &= (1 << bits) - 1;
                }
            }
            let decoded = decoded.trim_ascii();
            decoded.len() >= 2
                && decoded[0] == b'{'
                && decoded[decoded.len() - 1] == b'}'
                && decoded.windows(5).any(|w| w == b"\"alg\"")
        }
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let header = b"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        for len in 0..=40 {
            for round in 0..200 {
                crate::xorshift(&mut rng);
                let mut segment: Vec<u8> = header.iter().copied().cycle().take(len).collect();
                let at = (rng % 41) as usize;
                if at < len {
                    segment[at] = match round % 4 {
                        0 => ALPHABET[(rng >> 8) as usize % 64],
                        1 => b"=+/.\x80\xff"[(rng >> 8) as usize % 6],
                        _ => segment[at],
                    };
                }
                if round % 5 == 0 {
                    segment.extend_from_slice(&b"=="[..(rng >> 16) as usize % 3]);
                }
                assert_eq!(jwt_header_ok(&segment), plain(&segment), "{segment:?}");
            }
        }
    }

    /// `"alg"` is found wherever it starts in a group of three decoded bytes, and near misses
    /// are not taken for it.
    #[test]
    fn jwt_header_finds_alg_at_every_offset() {
        fn encode(bytes: &[u8]) -> Vec<u8> {
            const ALPHABET: &[u8] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let mut out = Vec::new();
            for chunk in bytes.chunks(3) {
                let n = chunk
                    .iter()
                    .enumerate()
                    .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
                for k in 0..=chunk.len() {
                    out.push(ALPHABET[(n >> (18 - 6 * k) & 63) as usize]);
                }
            }
            out
        }
        let keys: &[&[u8]] = &[b"\"alg\"", b"\"alG\"", b"\"al\"", b"alg", b"\"typ\""];
        for pad in 0..7 {
            for key in keys {
                for tail in [&b""[..], b":1", b" ", b":\"none\"} "] {
                    let mut json = b"{".to_vec();
                    json.extend(std::iter::repeat_n(b' ', pad));
                    json.extend_from_slice(key);
                    json.extend_from_slice(tail);
                    json.push(b'}');
                    let want = json.windows(5).any(|w| w == b"\"alg\"");
                    assert_eq!(jwt_header_ok(&encode(&json)), want, "{json:?}");
                }
            }
        }
    }

    #[test]
    fn jwt_header_max_length_accepted() {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        // `{"alg":"x"` + spaces + `}` encoded to exactly 512 characters.
        let mut json = [b' '; 384];
        json[..10].copy_from_slice(b"{\"alg\":\"x\"");
        json[383] = b'}';
        let mut enc = [0u8; 512];
        for (chunk, out) in json.chunks(3).zip(enc.chunks_mut(4)) {
            let n = (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8) | u32::from(chunk[2]);
            for (k, slot) in out.iter_mut().enumerate() {
                *slot = ALPHABET[((n >> (18 - 6 * k)) & 63) as usize];
            }
        }
        assert!(jwt_header_ok(&enc));
    }

    #[test]
    fn ipv6_agrees_with_std() {
        let fixed: &[&str] = &[
            "::",
            "::1",
            "1::",
            "2001:db8::1",
            "fe80::1ff:fe23:4567:890a",
            "::ffff:192.0.2.1",
            "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7::",
            "1:2:3:4:5:6::1.2.3.4",
            "1:2:3:4:5::1.2.3.4",
            "1:2:3:4:5:6:1.2.3.4",
            "1.2.3.4",
            "1.2.3.4::",
            "::1.2.3.4",
            "::1.2.3",
            "::01.2.3.4",
            "::256.1.1.1",
            "12345::",
            "1:::2",
            ":1::",
            "1::2::3",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7",
            "g::",
            "",
            ":",
            "::ffff:1.2.3.4.5",
            "1::2:3:4:5:6:7",
            "1::2:3:4:5:6:7:8",
            "abcd::ABCD",
        ];
        for s in fixed {
            let std = s.parse::<std::net::Ipv6Addr>().is_ok();
            assert_eq!(ipv6_ok(s.as_bytes()), std, "{s:?}");
        }
        // Strings of up to 15 characters over an alphabet that spells addresses, sampled.
        const ALPHABET: &[u8] = b"0f1:.2";
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..200_000 {
            crate::xorshift(&mut rng);
            let len = (rng % 16) as usize;
            let s: Vec<u8> = (0..len)
                .map(|k| ALPHABET[((rng >> (4 + 3 * k)) % ALPHABET.len() as u64) as usize])
                .collect();
            let text = std::str::from_utf8(&s).expect("ASCII");
            let std = text.parse::<std::net::Ipv6Addr>().is_ok();
            assert_eq!(ipv6_ok(&s), std, "{text:?}");
        }
    }

    #[test]
    fn ipv4_octet_table() {
        let cases: &[(&[u8], Option<u8>)] = &[
            (b"0", Some(0)),
            (b"7", Some(7)),
            (b"10", Some(10)),
            (b"99", Some(99)),
            (b"100", Some(100)),
            (b"192", Some(192)),
            (b"249", Some(249)),
            (b"255", Some(255)),
            (b"256", None),
            (b"300", None),
            (b"999", None),
            (b"01", None),
            (b"00", None),
            (b"001", None),
            (b"010", None),
            (b"1000", None),
            (b"", None),
            (b"a", None),
            (b"1a", None),
            (b"2a5", None),
            (b"-1", None),
        ];
        for &(input, want) in cases {
            assert_eq!(
                ipv4_octet(input),
                want,
                "ipv4_octet({:?})",
                String::from_utf8_lossy(input)
            );
        }
    }
}
