//! Free loopback ports, so servers started by tests never collide with each other or with a stack
//! running on the standard ports.

use std::net::{Ipv4Addr, TcpListener};

/// A TCP port on 127.0.0.1 that was free a moment ago: the OS picks it for a listener that is then
/// dropped. Another process may take it in between, which is unlikely enough for tests.
///
/// # Panics
/// If no loopback port can be bound at all, which no test could survive anyway.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|e| panic!("cannot bind any port on 127.0.0.1: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("no local address of a bound listener: {e}"))
        .port()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_port_can_be_bound_again() {
        let port = free_port();
        assert_ne!(port, 0);
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port));
        assert!(listener.is_ok(), "port {port} should be free: {listener:?}");
    }
}
