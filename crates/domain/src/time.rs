use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A point in time, milliseconds since the Unix epoch, UTC. Stored as BIGINT in both engines,
/// shown as RFC 3339 in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Self {
        let now = OffsetDateTime::now_utc();
        Timestamp((now.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    /// 0000-01-01T00:00:00.000Z.
    pub const MIN_RFC3339_MILLIS: i64 = -62_167_219_200_000;
    /// 9999-12-31T23:59:59.999Z.
    pub const MAX_RFC3339_MILLIS: i64 = 253_402_300_799_999;

    pub fn from_unix_seconds(seconds: i64) -> Self {
        Timestamp(seconds.saturating_mul(1000))
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    pub fn plus_seconds(self, seconds: i64) -> Self {
        Timestamp(self.0.saturating_add(seconds.saturating_mul(1000)))
    }

    pub fn parse_rfc3339(text: &str) -> Result<Self, String> {
        let parsed = OffsetDateTime::parse(text, &Rfc3339)
            .map_err(|e| format!("`{text}` is not an RFC 3339 time: {e}"))?;
        Ok(Timestamp(
            (parsed.unix_timestamp_nanos() / 1_000_000) as i64,
        ))
    }

    /// `YYYY-MM-DDTHH:MM:SS[.mmm]Z`. Hand-rolled: it runs several times per validation answer.
    pub fn to_rfc3339(self) -> String {
        // The years RFC 3339 can write, 0000..=9999: every time `parse_rfc3339` accepts is
        // written back as itself (stored events and states are read back through it).
        let millis = self
            .0
            .clamp(Self::MIN_RFC3339_MILLIS, Self::MAX_RFC3339_MILLIS);
        let secs = millis.div_euclid(1000);
        let ms = millis.rem_euclid(1000);
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (y, mo, d) = civil_from_days(days);
        let (h, mi, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
        let mut buf = [0u8; 24];
        let digits = |buf: &mut [u8], at: usize, value: i64, width: usize| {
            let mut v = value;
            for i in (0..width).rev() {
                buf[at + i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        digits(&mut buf, 0, y, 4);
        buf[4] = b'-';
        digits(&mut buf, 5, mo, 2);
        buf[7] = b'-';
        digits(&mut buf, 8, d, 2);
        buf[10] = b'T';
        digits(&mut buf, 11, h, 2);
        buf[13] = b':';
        digits(&mut buf, 14, mi, 2);
        buf[16] = b':';
        digits(&mut buf, 17, s, 2);
        let len = if ms == 0 {
            buf[19] = b'Z';
            20
        } else {
            buf[19] = b'.';
            digits(&mut buf, 20, ms, 3);
            buf[23] = b'Z';
            24
        };
        String::from_utf8_lossy(&buf[..len]).into_owned()
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Timestamp::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_the_time_crate() {
        use time::format_description::well_known::Rfc3339;
        for millis in [
            0i64,
            951_782_400_000,
            1_709_164_800_123,
            1_798_761_599_999,
            4_102_444_800_000,
            -1,
            -30_199_996_799_000,
            Timestamp::MIN_RFC3339_MILLIS,
            Timestamp::MAX_RFC3339_MILLIS,
        ] {
            let ours = Timestamp(millis).to_rfc3339();
            let reference = OffsetDateTime::from_unix_timestamp_nanos(millis as i128 * 1_000_000)
                .unwrap()
                .format(&Rfc3339)
                .unwrap();
            assert_eq!(
                Timestamp::parse_rfc3339(&ours).unwrap(),
                Timestamp::parse_rfc3339(&reference).unwrap(),
                "{millis}: {ours} vs {reference}"
            );
        }
        assert_eq!(
            Timestamp(1_709_164_800_123).to_rfc3339(),
            "2024-02-29T00:00:00.123Z"
        );
        // Before 1970 too: a time read back from storage is the time written.
        let old = Timestamp::parse_rfc3339("1013-01-01T00:00:01Z").unwrap();
        assert_eq!(old.to_rfc3339(), "1013-01-01T00:00:01Z");
        assert_eq!(Timestamp::parse_rfc3339(&old.to_rfc3339()).unwrap(), old);
        // Outside 0000..=9999 the format has no spelling: the nearest bound.
        assert_eq!(Timestamp(i64::MIN).to_rfc3339(), "0000-01-01T00:00:00Z");
        assert_eq!(Timestamp(i64::MAX).to_rfc3339(), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn round_trips_rfc3339() {
        let t = Timestamp::parse_rfc3339("2026-11-23T10:20:30Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-23T10:20:30Z");
        let t = Timestamp::parse_rfc3339("2026-11-23T10:20:30.250+01:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-23T09:20:30.250Z");
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
    }
}
