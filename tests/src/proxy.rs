//! A TCP proxy the tests can cut: it forwards to an upstream until told to refuse
//! connections (the port closes: connection refused) or to blackhole them (connections are
//! accepted and kept, but no byte passes either way, as when a route drops packets). Set it
//! back to pass and the connections that lived through a cut are reset, as a real network
//! would after a long enough outage, so clients see an error and reconnect.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Forwards both ways.
    Pass,
    /// The port is closed: new connections are refused, open ones are reset.
    Refuse,
    /// Nothing passes and nothing is refused: every wait hangs.
    Blackhole,
}

/// A running proxy on 127.0.0.1. Stopped when dropped.
#[derive(Debug)]
pub struct CuttableProxy {
    /// Its port.
    pub port: u16,
    link: watch::Sender<Link>,
    thread: Option<std::thread::JoinHandle<()>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl CuttableProxy {
    /// Starts a proxy to `upstream`, passing traffic.
    pub fn start(upstream: SocketAddr) -> Self {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = std_listener.local_addr().expect("proxy address").port();
        std_listener
            .set_nonblocking(true)
            .expect("non-blocking proxy listener");
        let (link, link_rx) = watch::channel(Link::Pass);
        let (stop, stop_rx) = tokio::sync::oneshot::channel();
        // A runtime of its own: the proxy must keep running while a test blocks its own.
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("proxy runtime");
            runtime.block_on(async move {
                tokio::select! {
                    () = serve(std_listener, port, upstream, link_rx) => {}
                    _ = stop_rx => {}
                }
            });
        });
        Self {
            port,
            link,
            thread: Some(thread),
            stop: Some(stop),
        }
    }

    /// `host:port` of the proxy.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Changes what the proxy does, at once.
    pub fn set(&self, link: Link) {
        self.link.send_replace(link);
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    first: std::net::TcpListener,
    port: u16,
    upstream: SocketAddr,
    mut link: watch::Receiver<Link>,
) {
    let mut listener = Some(TcpListener::from_std(first).expect("proxy listener"));
    loop {
        let current = *link.borrow_and_update();
        match (current, &listener) {
            (Link::Refuse, Some(_)) => listener = None,
            (Link::Pass | Link::Blackhole, None) => listener = rebind(port).await,
            _ => {}
        }
        let Some(open) = &listener else {
            if link.changed().await.is_err() {
                return;
            }
            continue;
        };
        tokio::select! {
            accepted = open.accept() => {
                if let Ok((client, _)) = accepted {
                    tokio::spawn(connection(client, upstream, link.clone()));
                }
            }
            changed = link.changed() => if changed.is_err() { return },
        }
    }
}

/// The same port again; another process may hold it for a moment after the close.
async fn rebind(port: u16) -> Option<TcpListener> {
    for _ in 0..100 {
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)).await {
            return Some(listener);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

async fn connection(client: TcpStream, upstream: SocketAddr, mut link: watch::Receiver<Link>) {
    if *link.borrow_and_update() == Link::Pass
        && let Ok(server) = TcpStream::connect(upstream).await
    {
        pump(client, server, &mut link).await;
        return;
    }
    // Accepted while cut: held silently until the link changes, then reset.
    let _ = link.changed().await;
    reset(client);
}

async fn pump(mut client: TcpStream, mut server: TcpStream, link: &mut watch::Receiver<Link>) {
    let mut up = vec![0u8; 16 * 1024];
    let mut down = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            read = client.read(&mut up) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => if server.write_all(&up[..n]).await.is_err() { return },
            },
            read = server.read(&mut down) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => if client.write_all(&down[..n]).await.is_err() { return },
            },
            changed = link.changed() => {
                if changed.is_err() { return }
                let now = *link.borrow_and_update();
                match now {
                    Link::Pass => {}
                    Link::Refuse => { reset(client); reset(server); return }
                    Link::Blackhole => {
                        // Nothing moves until the link changes again.
                        let _ = link.changed().await;
                        reset(client);
                        reset(server);
                        return;
                    }
                }
            }
        }
    }
}

/// Closes with a reset, not a graceful close, as a peer that gave up would. (The lint warns
/// that lingering blocks on drop; a zero linger does not linger, it resets.)
#[allow(deprecated)]
fn reset(stream: TcpStream) {
    let _ = stream.set_linger(Some(Duration::ZERO));
    drop(stream);
}
