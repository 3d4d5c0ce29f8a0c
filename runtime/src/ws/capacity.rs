//! How many WebSocket connections one user and one client address may hold open at once, so that neither a stolen
//! token nor one busy address can take all of the server's sockets. Counts live only while connections do: a key
//! whose count falls to zero is forgotten, so memory follows the open connections. In a cluster the per-user cap
//! counts the user's sockets on every node: each node announces its own count, and the others are added in.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

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

/// The other nodes' connections, for a per-user cap that counts the whole cluster.
pub trait Elsewhere: Send + Sync {
    /// How many sockets the user holds on the other nodes.
    fn connections_elsewhere(&self, user_id: Uuid) -> u32;
    /// The user now holds `count` sockets on this node.
    fn connections_here(&self, user_id: Uuid, count: u32);
}

/// The open connections per user and per client address, against their caps.
pub struct ConnectionCaps {
    per_user: u32,
    per_address: u32,
    open: Mutex<Open>,
    /// The rest of the cluster, when this node is one of several.
    elsewhere: OnceLock<Arc<dyn Elsewhere>>,
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
            elsewhere: OnceLock::new(),
        })
    }

    /// Counts the other nodes' connections of each user too, from now on.
    pub fn count_elsewhere(&self, elsewhere: Arc<dyn Elsewhere>) {
        let _ = self.elsewhere.set(elsewhere);
    }

    /// Takes a place for a connection of `user` from `address` (unknown for connections the server did not accept
    /// itself, as in tests), or says which cap is full.
    pub fn admit(
        self: &Arc<Self>,
        user: Uuid,
        address: Option<IpAddr>,
    ) -> Result<Slot, ConnectionCap> {
        let mut open = self.lock();
        let here = open.users.get(&user).copied().unwrap_or(0);
        let elsewhere = self
            .elsewhere
            .get()
            .map_or(0, |elsewhere| elsewhere.connections_elsewhere(user));
        if here.saturating_add(elsewhere) >= self.per_user {
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
        if let Some(elsewhere) = self.elsewhere.get() {
            // Under the lock, so the counts announced follow each other in order.
            elsewhere.connections_here(user, here + 1);
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
        let left = release(&mut open.users, &self.user);
        if let Some(elsewhere) = self.caps.elsewhere.get() {
            elsewhere.connections_here(self.user, left);
        }
        if let Some(address) = &self.address {
            release(&mut open.addresses, address);
        }
    }
}

/// Counts one connection of `key` as closed, forgetting the key at zero; how many are left.
fn release<K: Hash + Eq>(counts: &mut HashMap<K, u32>, key: &K) -> u32 {
    let Some(count) = counts.get_mut(key) else {
        return 0;
    };
    *count = count.saturating_sub(1);
    let left = *count;
    if left == 0 {
        counts.remove(key);
    }
    left
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

    /// Another node's connections, as a test sets them; and what this node announced.
    #[derive(Default)]
    struct OtherNodes {
        there: Mutex<HashMap<Uuid, u32>>,
        announced: Mutex<Vec<(Uuid, u32)>>,
    }

    impl Elsewhere for OtherNodes {
        fn connections_elsewhere(&self, user_id: Uuid) -> u32 {
            self.there
                .lock()
                .unwrap()
                .get(&user_id)
                .copied()
                .unwrap_or(0)
        }

        fn connections_here(&self, user_id: Uuid, count: u32) {
            self.announced.lock().unwrap().push((user_id, count));
        }
    }

    #[test]
    fn the_per_user_cap_counts_the_other_nodes_and_every_change_is_announced() {
        let caps = ConnectionCaps::new(3, 100);
        let others = Arc::new(OtherNodes::default());
        caps.count_elsewhere(others.clone());
        let (jane, joe) = (Uuid::now_v7(), Uuid::now_v7());
        others.there.lock().unwrap().insert(jane, 2);
        let first = caps.admit(jane, ip(1)).unwrap();
        assert_eq!(
            caps.admit(jane, ip(1)).err(),
            Some(ConnectionCap::PerUser),
            "one here and two elsewhere fill a cap of three"
        );
        let _joe = caps.admit(joe, ip(1)).unwrap();
        drop(first);
        others.there.lock().unwrap().insert(jane, 0);
        let _again = caps.admit(jane, ip(1)).unwrap();
        assert_eq!(
            *others.announced.lock().unwrap(),
            [(jane, 1), (joe, 1), (jane, 0), (jane, 1)],
            "a refused connection announces nothing"
        );
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
