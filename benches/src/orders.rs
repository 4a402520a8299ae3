//! Order messages like the ones in TARGETS.md (≈ 223 bytes of JSON), with varied values so
//! that filters and routes take every branch.

use bytes::Bytes;

const STATUSES: [&str; 4] = ["pending", "paid", "shipped", "refunded"];
const REGIONS: [&str; 4] = ["eu-west", "eu-north", "us-east", "ap-south"];
const CURRENCIES: [&str; 3] = ["USD", "EUR", "GBP"];

/// The `i`-th order. Deterministic: the same `i` always gives the same bytes.
pub fn order(i: u64) -> Bytes {
    // A small multiplicative hash spreads the values without a random generator.
    let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16;
    let amount = (h % 2_000_000) as f64 / 100.0 + if h.is_multiple_of(50) { 10_000.0 } else { 0.0 };
    Bytes::from(format!(
        r#"{{"order_id":"ord-{i:06}","customer_id":"cus-{}","amount":{amount:.2},"currency":"{}","status":"{}","region":"{}","items":[{{"sku":"A-{}","qty":{}}}],"channel":"web","payment":"card","created_at":"2026-11-25T10:00:00Z"}}"#,
        h % 1000,
        CURRENCIES[(h % 3) as usize],
        STATUSES[((h >> 4) % 4) as usize],
        REGIONS[((h >> 8) % 4) as usize],
        h % 97,
        1 + h % 5,
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn orders_are_json_of_the_expected_size() {
        let mut total = 0;
        for i in 0..1000 {
            let bytes = super::order(i);
            let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert!(value["amount"].is_number());
            total += bytes.len();
        }
        let mean = total / 1000;
        assert!((200..=240).contains(&mean), "mean size {mean}");
    }
}
