//! Calendar dates and local times as form and XML platforms write them: 2Checkout's
//! `YYYY-MM-DD HH:MM:SS` and `YmdHis` in the notification's `GMT+hh:mm` zone, Braintree's
//! `YYYY-MM-DD` billing dates. Each is turned into RFC 3339 and read by [`Timestamp`].

use keygate_domain::Timestamp;

/// `GMT+03:00`, `GMT-05:30`, `GMT`, `UTC+2`, or empty (UTC) as an RFC 3339 offset (`+03:00`).
pub(crate) fn gmt_offset(text: &str) -> Option<String> {
    let text = text.trim();
    let rest = text
        .strip_prefix("GMT")
        .or_else(|| text.strip_prefix("UTC"))
        .unwrap_or(text);
    if rest.is_empty() {
        return Some("Z".into());
    }
    let (sign, digits) = match rest.as_bytes()[0] {
        b'+' => ('+', &rest[1..]),
        b'-' => ('-', &rest[1..]),
        _ => return None,
    };
    let (hours, minutes) = digits.split_once(':').unwrap_or((digits, "0"));
    let hours: u32 = hours.parse().ok()?;
    let minutes: u32 = minutes.parse().ok()?;
    (hours <= 14 && minutes < 60).then(|| format!("{sign}{hours:02}:{minutes:02}"))
}

/// `YYYY-MM-DD HH:MM:SS` (or `YYYY-MM-DDTHH:MM:SS`) in the zone `offset` (RFC 3339 form).
pub(crate) fn local_datetime(text: &str, offset: &str) -> Option<Timestamp> {
    let text = text.trim();
    if text.len() != 19 || !matches!(text.as_bytes()[10], b' ' | b'T') {
        return None;
    }
    Timestamp::parse_rfc3339(&format!("{}T{}{offset}", &text[..10], &text[11..])).ok()
}

/// `YYYYMMDDHHMMSS` in the zone `offset`.
pub(crate) fn compact_datetime(text: &str, offset: &str) -> Option<Timestamp> {
    let t = text.trim();
    if t.len() != 14 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    local_datetime(
        &format!(
            "{}-{}-{} {}:{}:{}",
            &t[..4],
            &t[4..6],
            &t[6..8],
            &t[8..10],
            &t[10..12],
            &t[12..14]
        ),
        offset,
    )
}

/// The start of the calendar day `YYYY-MM-DD` in the zone `offset`.
pub(crate) fn date_start(text: &str, offset: &str) -> Option<Timestamp> {
    let text = text.trim();
    (text.len() == 10).then_some(())?;
    Timestamp::parse_rfc3339(&format!("{text}T00:00:00{offset}")).ok()
}

/// The end of the calendar day `YYYY-MM-DD` (the next day's start): a date a platform says
/// something is paid through or valid until includes that whole day.
pub(crate) fn date_end(text: &str, offset: &str) -> Option<Timestamp> {
    date_start(text, offset).map(|start| start.plus_seconds(86_400))
}

/// `YYYYMMDDHHMMSS` of `at` in UTC (2Checkout's read-receipt `DATE`).
pub(crate) fn compact_utc(at: Timestamp) -> String {
    let rfc = at.to_rfc3339();
    rfc[..19].chars().filter(char::is_ascii_digit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_platforms_formats() {
        assert_eq!(gmt_offset("GMT+03:00").as_deref(), Some("+03:00"));
        assert_eq!(gmt_offset("GMT-5").as_deref(), Some("-05:00"));
        assert_eq!(gmt_offset("").as_deref(), Some("Z"));
        assert_eq!(gmt_offset("GMT+99:00"), None);
        assert_eq!(gmt_offset("Europe/Bucharest"), None);
        let t = local_datetime("2023-06-09 15:31:18", "+03:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2023-06-09T12:31:18Z");
        assert_eq!(
            compact_datetime("20230621183208", "Z")
                .unwrap()
                .to_rfc3339(),
            "2023-06-21T18:32:08Z"
        );
        assert_eq!(compact_datetime("2023-06-21", "Z"), None);
        assert_eq!(local_datetime("2023-06-09", "Z"), None);
        assert_eq!(
            date_end("2013-12-19", "Z").unwrap().to_rfc3339(),
            "2013-12-20T00:00:00Z"
        );
        assert_eq!(
            date_start("2013-12-19", "Z").unwrap().to_rfc3339(),
            "2013-12-19T00:00:00Z"
        );
        assert_eq!(date_end("2013-13-19", "Z"), None);
        assert_eq!(
            compact_utc(Timestamp::parse_rfc3339("2008-11-17T14:59:35.120Z").unwrap()),
            "20081117145935"
        );
    }
}
