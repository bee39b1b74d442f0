//! The listener's caps: open connections in all and per client address (an IPv6 address counts
//! by its /64, which one host usually holds whole). At a cap, the oldest connection that has
//! nothing being worked on for it — still sending its headers or a request's body, or idle
//! between requests — is closed for the newcomer; only when every connection is busy is the
//! newcomer refused. Pure bookkeeping
//! under one lock: it must never touch a socket.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::Bounds;
use super::conn::Activity;

/// Open connections, in all and by client address.
#[derive(Default)]
pub(super) struct Open {
    pub(super) total: usize,
    pub(super) by_address: HashMap<IpAddr, usize>,
    /// Connection number (in order of arrival) → its address, how to close it, what it does.
    conns: BTreeMap<u64, (IpAddr, Closing, Arc<Activity>)>,
    next: u64,
}

/// How a connection is closed for a newcomer (`close`), and how the newcomer learns that it is
/// gone, its descriptor with it (`gone`).
#[derive(Clone, Default)]
pub(super) struct Closing {
    pub(super) close: CancellationToken,
    pub(super) gone: CancellationToken,
}

/// A connection's place under the caps, given back when it closes.
pub(super) struct Slot {
    open: Arc<Mutex<Open>>,
    address: IpAddr,
    number: u64,
    pub(super) close: CancellationToken,
    gone: CancellationToken,
    pub(super) activity: Arc<Activity>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gone.cancel();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total = open.total.saturating_sub(1);
        open.conns.remove(&self.number);
        if let Some(n) = open.by_address.get_mut(&self.address) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.by_address.remove(&self.address);
            }
        }
        crate::metrics::global().connection(-1);
    }
}

/// The address a connection counts under: IPv4 as is, IPv6 by its /64.
pub(super) fn counted_as(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
        v4 => v4,
    }
}

/// A slot for a connection from `ip`, making room at a cap (then also the token of the
/// connection closed for it, cancelled once that one is gone); or the cap it would cross.
pub(super) fn claim_slot(
    open: &Arc<Mutex<Open>>,
    bounds: &Bounds,
    ip: IpAddr,
) -> Result<(Slot, Option<CancellationToken>), &'static str> {
    let address = counted_as(ip);
    let mut o = open.lock().unwrap_or_else(|e| e.into_inner());
    let mine = o.by_address.get(&address).copied().unwrap_or(0);
    let cap = if mine >= bounds.per_address {
        Some(("connection_per_address", Some(address)))
    } else if o.total >= bounds.connections {
        Some(("connection", None))
    } else {
        None
    };
    let mut evicted = None;
    if let Some((cap, scope)) = cap {
        let oldest = o
            .conns
            .iter()
            .find(|(_, (a, _, activity))| scope.is_none_or(|s| s == *a) && activity.unserved())
            .map(|(n, _)| *n);
        let Some((_, closing, _)) = oldest.and_then(|n| o.conns.remove(&n)) else {
            return Err(cap);
        };
        // its slot and descriptor are given back when its task ends, a moment from now
        closing.close.cancel();
        evicted = Some(closing.gone);
        crate::metrics::global().refused(&format!("{cap}_idle"));
    }
    *o.by_address.entry(address).or_insert(0) += 1;
    o.total += 1;
    let number = o.next;
    o.next += 1;
    let closing = Closing::default();
    let activity = Arc::new(Activity::new());
    o.conns
        .insert(number, (address, closing.clone(), activity.clone()));
    crate::metrics::global().connection(1);
    let slot = Slot {
        open: open.clone(),
        address,
        number,
        close: closing.close,
        gone: closing.gone,
        activity,
    };
    Ok((slot, evicted))
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::{Bounds, Open, claim_slot, counted_as};

    #[tokio::test]
    async fn at_a_cap_the_oldest_connection_without_a_request_in_flight_makes_room() {
        let bounds = Bounds {
            header_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            body_timeout: Duration::from_secs(1),
            connections: 3,
            per_address: 2,
        };
        let open = Arc::new(Mutex::new(Open::default()));
        let (a, b) = (
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        );
        let (first, none) = claim_slot(&open, &bounds, a).unwrap();
        assert!(none.is_none(), "below the caps, nobody is closed");
        let (second, _) = claim_slot(&open, &bounds, a).unwrap();
        // a's third: a's oldest without a request in flight makes room
        let (third, evicted) = claim_slot(&open, &bounds, a).unwrap();
        assert!(first.close.is_cancelled() && !second.close.is_cancelled());
        let gone = evicted.expect("the newcomer learns when the closed one is gone");
        assert!(!gone.is_cancelled(), "its descriptor is still open");
        drop(first);
        assert!(
            gone.is_cancelled(),
            "its slot given back: the next accept may go on"
        );
        // a request whose body is still arriving is not worked on yet: it may still make room
        second.activity.request();
        third.activity.request();
        assert!(second.activity.unserved());
        second.activity.body_read();
        third.activity.body_read();
        // every connection of a is busy: a's next is refused
        assert_eq!(
            claim_slot(&open, &bounds, a).err(),
            Some("connection_per_address")
        );
        let (fourth, _) = claim_slot(&open, &bounds, b).unwrap();
        // the listener is full: b's own waiting one makes room for b's next
        let (fifth, _) = claim_slot(&open, &bounds, b).unwrap();
        assert!(fourth.close.is_cancelled());
        drop(fourth);
        fifth.activity.request();
        fifth.activity.body_read();
        assert_eq!(claim_slot(&open, &bounds, b).err(), Some("connection"));
        // a request answered: that connection is idle again, and may make room
        second.activity.responded();
        let (sixth, _) = claim_slot(&open, &bounds, b).expect("room from an idle connection");
        assert!(second.close.is_cancelled());
        drop(second);
        drop(sixth);
        assert_eq!(open.lock().unwrap().total, 2);
        assert_eq!(open.lock().unwrap().by_address[&b], 1);
    }

    #[test]
    fn an_ipv6_host_counts_by_its_64_and_a_mapped_ipv4_as_itself() {
        let one: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let two: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(counted_as(one), counted_as(two));
        assert_ne!(counted_as(one), counted_as(other));
        let mapped: IpAddr = "::ffff:10.0.0.2".parse().unwrap();
        assert_eq!(counted_as(mapped), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
    }
}
