//! How many WebSocket connections one user and one client address may hold open at once, so that neither a stolen
//! token nor one busy address can take all of the server's sockets. Counts live only while connections do: a key
//! whose count falls to zero is forgotten, so memory follows the open connections.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use palaver_handlers::ConnectionCap;
use palaver_handlers::model::Limit;
use uuid::Uuid;

/// The limit a refusing cap is counted and audited as.
pub fn limit_of(cap: ConnectionCap) -> Limit {
    match cap {
        ConnectionCap::PerUser => Limit::ConnectionsPerUser,
        ConnectionCap::PerAddress => Limit::ConnectionsPerIp,
    }
}

/// The open connections per user and per client address, against their caps.
pub struct ConnectionCaps {
    per_user: u32,
    per_address: u32,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    users: HashMap<Uuid, u32>,
    addresses: HashMap<IpAddr, u32>,
}

/// One admitted connection's place; dropping it (when the connection ends) frees the place.
pub struct Slot {
    caps: Arc<ConnectionCaps>,
    user: Uuid,
    address: Option<IpAddr>,
}

impl ConnectionCaps {
    pub fn new(per_user: u32, per_address: u32) -> Arc<Self> {
        Arc::new(ConnectionCaps {
            per_user,
            per_address,
            open: Mutex::default(),
        })
    }

    /// Takes a place for a connection of `user` from `address` (unknown for connections the server did not accept
    /// itself, as in tests), or says which cap is full.
    pub fn admit(
        self: &Arc<Self>,
        user: Uuid,
        address: Option<IpAddr>,
    ) -> Result<Slot, ConnectionCap> {
        let mut open = self.lock();
        if open.users.get(&user).copied().unwrap_or(0) >= self.per_user {
            return Err(ConnectionCap::PerUser);
        }
        if let Some(address) = address
            && open.addresses.get(&address).copied().unwrap_or(0) >= self.per_address
        {
            return Err(ConnectionCap::PerAddress);
        }
        *open.users.entry(user).or_default() += 1;
        if let Some(address) = address {
            *open.addresses.entry(address).or_default() += 1;
        }
        Ok(Slot {
            caps: self.clone(),
            user,
            address,
        })
    }

    /// How many users and addresses have connections open (the memory the caps use).
    pub fn tracked(&self) -> (usize, usize) {
        let open = self.lock();
        (open.users.len(), open.addresses.len())
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.caps.lock();
        release(&mut open.users, &self.user);
        if let Some(address) = &self.address {
            release(&mut open.addresses, address);
        }
    }
}

/// Counts one connection of `key` as closed, forgetting the key at zero.
fn release<K: Hash + Eq>(counts: &mut HashMap<K, u32>, key: &K) {
    if let Some(count) = counts.get_mut(key) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            counts.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, last]))
    }

    #[test]
    fn a_user_gets_its_cap_and_a_place_back_when_one_closes() {
        let caps = ConnectionCaps::new(2, 100);
        let jane = Uuid::now_v7();
        let first = caps.admit(jane, ip(1)).unwrap();
        let _second = caps.admit(jane, ip(2)).unwrap();
        assert_eq!(caps.admit(jane, ip(3)).err(), Some(ConnectionCap::PerUser));
        assert!(
            caps.admit(Uuid::now_v7(), ip(1)).is_ok(),
            "others are not affected"
        );
        drop(first);
        assert!(caps.admit(jane, ip(3)).is_ok());
    }

    #[test]
    fn an_address_gets_its_cap_across_users() {
        let caps = ConnectionCaps::new(100, 2);
        let _a = caps.admit(Uuid::now_v7(), ip(1)).unwrap();
        let _b = caps.admit(Uuid::now_v7(), ip(1)).unwrap();
        assert_eq!(
            caps.admit(Uuid::now_v7(), ip(1)).err(),
            Some(ConnectionCap::PerAddress)
        );
        assert!(caps.admit(Uuid::now_v7(), ip(2)).is_ok());
    }

    #[test]
    fn a_refused_connection_takes_no_place() {
        let caps = ConnectionCaps::new(1, 1);
        let jane = Uuid::now_v7();
        let slot = caps.admit(jane, ip(1)).unwrap();
        for _ in 0..10 {
            assert!(caps.admit(jane, ip(1)).is_err());
        }
        drop(slot);
        assert!(caps.admit(jane, ip(1)).is_ok());
    }

    #[test]
    fn memory_follows_the_open_connections() {
        let caps = ConnectionCaps::new(5, 5);
        let slots: Vec<Slot> = (0..1000u32)
            .map(|n| {
                let address = IpAddr::from(n.to_be_bytes());
                caps.admit(Uuid::now_v7(), Some(address)).unwrap()
            })
            .collect();
        assert_eq!(caps.tracked(), (1000, 1000));
        drop(slots);
        assert_eq!(caps.tracked(), (0, 0));
    }
}
