//! Random free loopback ports below Linux's ephemeral range (32768+).

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::{Mutex, PoisonError};

const LOW: u16 = 20_000;
const HIGH: u16 = 32_000;

/// A port in `LOW..HIGH` that is free right now (a bind succeeds) and was not handed out
/// before in this process. Another process may still take it before the broker binds it;
/// the scripts report that with exit code 3 and the caller retries with new ports.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    for _ in 0..1000 {
        let random = uuid::Uuid::new_v4().as_u128();
        let port = LOW + (random % u128::from(HIGH - LOW)) as u16;
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
        let handed_out = handed_out.get_or_insert_with(HashSet::new);
        if handed_out.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.insert(port);
            return port;
        }
    }
    panic!("strait-testkit: no free port found in {LOW}..{HIGH}");
}

#[cfg(test)]
mod tests {
    #[test]
    fn ports_are_distinct_and_in_range() {
        let ports: Vec<u16> = (0..50).map(|_| super::free_port()).collect();
        let unique: std::collections::HashSet<_> = ports.iter().collect();
        assert_eq!(unique.len(), ports.len());
        assert!(ports.iter().all(|p| (super::LOW..super::HIGH).contains(p)));
    }
}
