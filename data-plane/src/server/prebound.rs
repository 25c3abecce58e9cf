//! Hands a listener that we bound ourselves to pingora's listening service.
//!
//! pingora's listening `Service` binds from an address string inside `start_service`, on a worker runtime, after
//! `Server::run` has begun. That is too late for us: the binary must know the real port (port 0 in tests) and see
//! "address in use" before anything runs, and binding twice (once to learn the port, once inside pingora) would
//! leave a window in which another process can take the port.
//!
//! pingora has exactly one way in for a socket it did not bind, and it is public: the listen-fd table
//! (`ListenFds`, a shared `Fds` map from address string to raw fd) that `Server` passes to every service's
//! `start_service`. It exists for zero-downtime upgrades, where the old process hands its listening sockets to the
//! new one, and `ListenerEndpointBuilder::listen` (pingora-core `listeners/l4.rs`) looks the address up there
//! before binding and adopts the fd when it finds one. So this wrapper puts our fd in that table under the exact
//! address string it registers with the inner service, then delegates. No pingora patch, no unsafe code here, and
//! pingora's `Server` keeps doing what we want from it: worker runtimes, graceful shutdown, per-service threads.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::IntoRawFd;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::server::{ListenFds, ShutdownWatch};
use pingora::services::Service;
use pingora::services::listening;
use tokio::sync::oneshot;

pub(crate) struct PreboundListenerService<A> {
    inner: listening::Service<A>,
    /// Taken exactly once, when pingora starts the service.
    listener: Option<TcpListener>,
    /// The key under which pingora looks the fd up: the address string the inner service listens on.
    key: String,
    /// Dropped when `start_service` ends, including when its task is torn down by a panic. The shutdown watcher
    /// treats that as "the listener is gone", so `DataPlane::run` never keeps running with nothing accepting.
    exited: Option<oneshot::Sender<()>>,
}

impl<A> PreboundListenerService<A> {
    /// Returns the service and the receiver that resolves when the service stops.
    pub(crate) fn new(
        name: &str,
        app: A,
        listener: TcpListener,
        addr: SocketAddr,
    ) -> (Self, oneshot::Receiver<()>) {
        let key = addr.to_string();
        let mut inner = listening::Service::new(name.to_owned(), app);
        // TCP_NODELAY needs no option here: pingora sets it on every accepted TCP stream
        // (`ListenerEndpoint::apply_stream_settings`), and `TcpSocketOptions` has no switch for it.
        inner.add_tcp(&key);
        let (exited, exited_rx) = oneshot::channel();
        let service = Self {
            inner,
            listener: Some(listener),
            key,
            exited: Some(exited),
        };
        (service, exited_rx)
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> Service for PreboundListenerService<A> {
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        listeners_per_fd: usize,
    ) {
        let _exited = self.exited.take();
        let Some(fds) = fds else {
            // `Server::run` always passes the table on Unix; without it the fd could not reach the listener.
            tracing::error!("pingora started the data plane without a listen-fd table");
            return;
        };
        let Some(listener) = self.listener.take() else {
            tracing::error!("pingora started the data-plane listening service twice");
            return;
        };
        // From here pingora owns the descriptor: the listener endpoint adopts it, calls listen() again to raise the
        // backlog, and closes it when the service stops. The table keeps the bare number, exactly as for sockets
        // pingora binds itself; it would only be read again by a graceful upgrade, which this data plane never
        // requests (see `shutdown.rs`).
        fds.lock().add(self.key.clone(), listener.into_raw_fd());
        self.inner
            .start_service(Some(fds), shutdown, listeners_per_fd)
            .await;
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn threads(&self) -> Option<usize> {
        self.inner.threads
    }

    fn listen_addresses(&self) -> Option<Vec<String>> {
        Some(vec![self.key.clone()])
    }
}
