//! The rows of a channel's deliveries: each event posted, each failed attempt, and an event
//! given up on. Each names the row whose news it carried (`source_seq`) and the delivery's
//! stable id (the `webhook-id` a receiver deduplicates by).

use serde::{Deserialize, Serialize};

/// `channel_delivered`: a channel took an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelDelivered {
    /// `KIND:NAME`.
    pub channel: String,
    pub delivery: String,
    /// The event's type, e.g. `approval.opened`.
    pub event: String,
    pub source_seq: u64,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The HTTP status it answered.
    pub status: u16,
}

/// `channel_failed`: one attempt failed; the next is due at `next_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelFailed {
    pub channel: String,
    pub delivery: String,
    pub event: String,
    pub source_seq: u64,
    pub attempt: u32,
    pub error: String,
    /// RFC 3339 UTC.
    pub next_at: String,
}

/// `channel_gave_up`: an event not delivered after `attempts`, or refused for good.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelGaveUp {
    pub channel: String,
    pub delivery: String,
    pub event: String,
    pub source_seq: u64,
    pub attempts: u32,
    pub error: String,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::Row;
    use super::{ChannelDelivered, ChannelFailed, ChannelGaveUp};

    #[test]
    fn each_channel_row_reads_back_as_written() {
        let (channel, delivery, event) = (
            "webhook:ops".to_string(),
            "msg_1".to_string(),
            "approval.opened".to_string(),
        );
        let rows = [
            Row::ChannelDelivered(ChannelDelivered {
                channel: channel.clone(),
                delivery: delivery.clone(),
                event: event.clone(),
                source_seq: 7,
                attempt: 2,
                status: 204,
            }),
            Row::ChannelFailed(ChannelFailed {
                channel: channel.clone(),
                delivery: delivery.clone(),
                event: event.clone(),
                source_seq: 7,
                attempt: 1,
                error: "503".into(),
                next_at: "2026-12-04T20:00:01Z".into(),
            }),
            Row::ChannelGaveUp(ChannelGaveUp {
                channel,
                delivery,
                event,
                source_seq: 7,
                attempts: 9,
                error: "410".into(),
            }),
        ];
        for row in rows {
            let body = row.body();
            assert_eq!(body["source_seq"], json!(7), "{body}");
            assert_eq!(Row::parse(row.kind(), &body).unwrap(), row);
        }
    }
}
