//! Replaying logged commands (AOF load) through the ordinary command table, as
//! a client that is always authenticated and whose replies are discarded.

use std::sync::Arc;

use crate::client::{Client, ClientHandle};
use crate::resp::{OwnedArgv, Reply};
use crate::server::Server;

pub struct Replayer<'a> {
    srv: &'a Server,
    client: Client,
    out: Reply,
}

impl<'a> Replayer<'a> {
    pub fn new(srv: &'a Server) -> Self {
        let handle = Arc::new(ClientHandle::new(0, "aof".into(), String::new()));
        Replayer {
            srv,
            client: Client::new(handle, true, true),
            out: Reply::new(),
        }
    }

    /// Runs one logged command. Unknown commands and wrong arities are an
    /// error (the file is not ours to guess at); command errors are ignored,
    /// as Redis does.
    pub fn apply(&mut self, args: &[&[u8]]) -> Result<(), String> {
        let owned = OwnedArgv::from_args(args);
        let argv = owned.argv();
        let idx = crate::cmd::logged_command(&argv)?;
        self.client.clock = crate::client::CmdClock::start();
        crate::cmd::run_replay(self.srv, &mut self.client, &mut self.out, idx, &argv);
        if let Some(b) = self.client.blocked.take() {
            // Logs hold non-blocking forms; never leave a waiter behind.
            self.srv.blocking.unregister(self.client.id(), &b.keys);
            self.client
                .handle
                .blocked
                .store(false, std::sync::atomic::Ordering::Relaxed);
        }
        self.out.buf.clear();
        Ok(())
    }
}
