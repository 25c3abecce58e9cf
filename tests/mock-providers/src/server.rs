//! The listener and its connections, and [`MockProvider`], a mock running on its own thread for tests.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::thread::JoinHandle;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::behaviour::Behaviour;
use crate::handler;
use crate::record::RecordedRequest;
use crate::state::MockState;

/// Serves HTTP/1.1 on `listener` until `shutdown` completes; open connections (hung ones included) are dropped then.
pub async fn serve(
    listener: TcpListener,
    state: Arc<MockState>,
    shutdown: impl Future<Output = ()>,
) {
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        // Reap finished connections so the set does not grow over a long benchmark.
        while connections.try_join_next().is_some() {}
        let Ok((stream, _)) = accepted else {
            // EMFILE and friends: keep serving the connections we have rather than exiting.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        // Without it, Nagle's algorithm holds each small SSE event until the previous one is acknowledged, and a
        // delayed ACK at the peer turns that into ~40 ms per event.
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| handler::handle(state.clone(), req));
            // Errors here are the peer hanging up or our own `close` behaviour: nothing to report.
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A mock provider on 127.0.0.1 and an ephemeral port, served by a runtime on its own thread so it works the same
/// from `#[test]` and `#[tokio::test]` and outlives the test's runtime being busy. Dropping it stops the server and
/// closes every connection.
pub struct MockProvider {
    addr: SocketAddr,
    state: Arc<MockState>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl MockProvider {
    /// A well-behaved mock that records every request.
    pub fn start() -> MockProvider {
        MockProvider::start_with(Behaviour::default())
    }

    /// A mock with this default behaviour.
    pub fn start_with(behaviour: Behaviour) -> MockProvider {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .expect("bind the mock provider on 127.0.0.1");
        let addr = listener.local_addr().expect("mock provider address");
        listener
            .set_nonblocking(true)
            .expect("non-blocking mock listener");
        let state = Arc::new(MockState::new(behaviour, true));
        let (stop, stopped) = oneshot::channel::<()>();
        let served = state.clone();
        let thread = std::thread::Builder::new()
            .name(format!("mock-provider-{}", addr.port()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("mock provider runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener).expect("mock listener");
                    serve(listener, served, async {
                        let _ = stopped.await;
                    })
                    .await;
                });
            })
            .expect("spawn the mock provider thread");
        MockProvider {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, without a path. The gateway's OpenAI base is this plus `/v1`; Anthropic's is this.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `base_url()` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests()
    }

    /// The default behaviour for later requests (`x-mock-*` headers still override it per request).
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        self.state.set_behaviour(behaviour);
    }

    /// Well-behaved again, with no recorded requests and no failure counts.
    pub fn reset(&self) {
        self.state.reset();
    }
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
