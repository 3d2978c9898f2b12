//! Calendar dates in UTC for platforms that send days or count periods in months: Paddle
//! Classic's `YYYY-MM-DD` and `YYYY-MM-DD HH:MM:SS`, Gumroad's monthly recurrences (a month
//! later on the same day, clamped to the month's last day, as Rails' `1.month` adds).

use keygate_domain::Timestamp;

const DAY: i64 = 86_400;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn number(text: &str, digits: usize) -> Option<u32> {
    (text.len() == digits && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// `YYYY-MM-DD` as 00:00:00 UTC of that day; `None` unless it is a real date.
pub fn date(text: &str) -> Option<Timestamp> {
    let mut parts = text.trim().split('-');
    let year = i64::from(number(parts.next()?, 4)?);
    let month = number(parts.next()?, 2)?;
    let day = number(parts.next()?, 2)?;
    if parts.next().is_some() || !(1..=12).contains(&month) {
        return None;
    }
    if day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some(Timestamp::from_unix_seconds(
        days_from_civil(year, month, day) * DAY,
    ))
}

/// `YYYY-MM-DD HH:MM:SS` in UTC (Paddle Classic's `event_time`).
pub fn date_time(text: &str) -> Option<Timestamp> {
    let (day, time) = text.trim().split_once(' ')?;
    let midnight = date(day)?;
    let mut parts = time.split(':');
    let h = number(parts.next()?, 2)?;
    let m = number(parts.next()?, 2)?;
    let s = number(parts.next()?, 2)?;
    if parts.next().is_some() || h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some(midnight.plus_seconds(i64::from(h * 3600 + m * 60 + s)))
}

/// `at` plus `months` calendar months, at the same time of day; a day past the end of the
/// target month is clamped to its last day (Jan 31 + 1 month = Feb 28/29).
pub fn plus_months(at: Timestamp, months: i64) -> Timestamp {
    let millis = at.millis();
    let days = millis.div_euclid(DAY * 1000);
    let within = millis.rem_euclid(DAY * 1000);
    let (year, month, day) = civil_from_days(days);
    let index = year * 12 + i64::from(month) - 1 + months;
    let (year, month) = (index.div_euclid(12), (index.rem_euclid(12) + 1) as u32);
    let day = day.min(days_in_month(year, month));
    Timestamp(days_from_civil(year, month, day) * DAY * 1000 + within)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(date("2026-03-01"), Some(rfc("2026-03-01T00:00:00Z")));
        assert_eq!(date("2024-02-29"), Some(rfc("2024-02-29T00:00:00Z")));
        assert_eq!(date("1969-12-31"), Some(rfc("1969-12-31T00:00:00Z")));
        for bad in [
            "2026-02-29",
            "2026-13-01",
            "2026-1-01",
            "26-01-01",
            "2026-01-01x",
            "",
        ] {
            assert_eq!(date(bad), None, "{bad}");
        }
        assert_eq!(
            date_time("2026-03-01 13:04:05"),
            Some(rfc("2026-03-01T13:04:05Z"))
        );
        assert_eq!(date_time("2026-03-01T13:04:05"), None);
        assert_eq!(date_time("2026-03-01 24:00:00"), None);
    }

    #[test]
    fn months_are_calendar_months() {
        let at = rfc("2026-01-31T10:00:00.250Z");
        assert_eq!(plus_months(at, 1), rfc("2026-02-28T10:00:00.250Z"));
        assert_eq!(plus_months(at, 13), rfc("2027-02-28T10:00:00.250Z"));
        assert_eq!(
            plus_months(rfc("2023-12-31T00:00:00Z"), 2),
            rfc("2024-02-29T00:00:00Z")
        );
        assert_eq!(
            plus_months(rfc("2026-05-15T00:00:00Z"), 24),
            rfc("2028-05-15T00:00:00Z")
        );
        assert_eq!(
            plus_months(rfc("2026-05-15T00:00:00Z"), -5),
            rfc("2025-12-15T00:00:00Z")
        );
        for days in [-800_000, -1, 0, 59, 365, 20_000, 2_900_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
