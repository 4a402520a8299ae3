//! Whether the one reader of a consumer got every delivery the consumer made.
//!
//! A consumer numbers its deliveries (`consumer_sequence`), redeliveries included, so on one
//! subscription the numbers a reader sees go up by one. Two things break that, and a reader
//! that acks cumulatively (`AckPolicy::All`) must tell them apart:
//!
//! - **A gap**: the consumer delivered messages that never arrived — the connection was cut
//!   (a slow-consumer disconnect) or the pull subscription was dropped with messages in its
//!   buffer. The server redelivers them only after `ack_wait`, behind later messages, and the
//!   next cumulative ack would settle them unseen: they would be lost. The reader must start
//!   over after its last ack (or checkpoint) instead.
//! - **A step back**: nats-server restarted and recovered the consumer's state from before its
//!   last write-out, so it delivers again from there. Nothing is lost; what comes again was
//!   seen before (a stateful reader skips it by stream sequence, a stateless one's outputs
//!   are deduplicated by their ids).
//!
//! A consumer with several readers (shared delivery) sees gaps all the time (the others'
//! deliveries) and acks each message by itself; it has nothing to check.

/// Deliveries the consumer made that never reached this reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// The first delivery number that never arrived.
    pub from: u64,
    /// The last one.
    pub to: u64,
}

impl std::fmt::Display for Gap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.to - self.from + 1;
        write!(
            f,
            "deliveries {}..={} of the consumer never arrived ({count} messages lost on the way, \
             e.g. the connection was cut): starting over after the last ack so that a \
             cumulative ack cannot settle them unseen",
            self.from, self.to
        )
    }
}

/// Follows the delivery numbers of one subscription to a consumer.
#[derive(Debug, Default)]
pub struct DeliveryNumbers {
    last: Option<u64>,
}

impl DeliveryNumbers {
    /// Takes the next delivery numbers in the order they arrived; a [`Gap`] when some
    /// delivery before one of them never arrived. A step back (the server restarted) is
    /// followed from its new number.
    pub fn take(&mut self, numbers: impl IntoIterator<Item = u64>) -> Result<(), Gap> {
        for n in numbers {
            if let Some(last) = self.last
                && n > last + 1
            {
                return Err(Gap {
                    from: last + 1,
                    to: n - 1,
                });
            }
            self.last = Some(n);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_numbers_and_steps_back_are_whole() {
        let mut numbers = DeliveryNumbers::default();
        // A first number may be anything (a subscription opened on an older consumer).
        assert_eq!(numbers.take([41, 42, 43]), Ok(()));
        assert_eq!(numbers.take([44]), Ok(()));
        // The server restarted and delivers again from what it had written out.
        assert_eq!(numbers.take([45, 46, 30, 31, 32]), Ok(()));
        assert_eq!(numbers.take([33, 34]), Ok(()));
        assert_eq!(numbers.take([]), Ok(()));
    }

    #[test]
    fn a_delivery_that_never_arrived_is_a_gap_in_or_between_batches() {
        let mut numbers = DeliveryNumbers::default();
        assert_eq!(numbers.take([1, 2, 3]), Ok(()));
        assert_eq!(numbers.take([4, 7, 8]), Err(Gap { from: 5, to: 6 }));

        let mut numbers = DeliveryNumbers::default();
        assert_eq!(numbers.take([10, 11]), Ok(()));
        let gap = numbers.take([15]).unwrap_err();
        assert_eq!(gap, Gap { from: 12, to: 14 });
        assert!(gap.to_string().contains("deliveries 12..=14"), "{gap}");
        assert!(gap.to_string().contains("3 messages"), "{gap}");
    }
}
