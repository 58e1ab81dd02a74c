//! Amounts as Stripe sends them (integers in the currency's smallest unit)
//! written as decimals in the currency. The same rule as the SQL function
//! `stripe_sync.amount_decimal` (sql/schema.sql); a `#[pg_test]` checks that
//! both agree on every currency listed here.

/// Currencies without a minor unit (https://docs.stripe.com/currencies,
/// "Zero-decimal currencies").
pub const ZERO_DECIMAL: &[&str] = &[
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];

/// Currencies with three decimals (same page, "Three-decimal currencies").
pub const THREE_DECIMAL: &[&str] = &["bhd", "jod", "kwd", "omr", "tnd"];

/// Digits after the decimal point of `currency` (case-insensitive).
pub fn exponent(currency: &str) -> u32 {
    let c = currency.to_ascii_lowercase();
    if ZERO_DECIMAL.contains(&c.as_str()) {
        0
    } else if THREE_DECIMAL.contains(&c.as_str()) {
        3
    } else {
        2
    }
}

/// The amount as a decimal number: 1999 usd -> "19.99", 500 jpy -> "500",
/// 1234 kwd -> "1.234", -50 eur -> "-0.50".
pub fn decimal(amount: i64, currency: &str) -> String {
    let exp = exponent(currency);
    if exp == 0 {
        return amount.to_string();
    }
    let unit = 10u64.pow(exp);
    let abs = amount.unsigned_abs();
    let sign = if amount < 0 { "-" } else { "" };
    format!("{sign}{}.{:0width$}", abs / unit, abs % unit, width = exp as usize)
}

/// The amount with its currency code, as people read it: "29.00 USD".
pub fn display(amount: i64, currency: &str) -> String {
    format!("{} {}", decimal(amount, currency), currency.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_decimals_by_default() {
        assert_eq!(decimal(1999, "usd"), "19.99");
        assert_eq!(decimal(5, "EUR"), "0.05");
        assert_eq!(decimal(-50, "eur"), "-0.50");
        assert_eq!(decimal(0, "gbp"), "0.00");
        assert_eq!(display(2900, "usd"), "29.00 USD");
    }

    #[test]
    fn zero_and_three_decimal_currencies() {
        assert_eq!(decimal(500, "jpy"), "500");
        assert_eq!(decimal(500, "JPY"), "500");
        assert_eq!(decimal(1234, "kwd"), "1.234");
        assert_eq!(decimal(5, "bhd"), "0.005");
        assert_eq!(display(1234, "kwd"), "1.234 KWD");
    }

    #[test]
    fn extreme_amounts_do_not_overflow() {
        assert_eq!(decimal(i64::MIN, "usd"), "-92233720368547758.08");
        assert_eq!(decimal(i64::MAX, "usd"), "92233720368547758.07");
    }
}
