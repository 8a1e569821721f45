//! HTTP/2 streams run inside their connection's task instead of a tokio task
//! each.
//!
//! hyper hands every HTTP/2 stream (the request's whole life: the proxy
//! future, then piping the response body) to an executor. With tokio's, that
//! is a task per stream: a spawn, a registration in the runtime's task list, a
//! hop through the scheduler for every wake-up, and another for the
//! connection task whenever the stream queues a frame. Here the connection's
//! own task polls its streams right before it polls the connection, so a
//! response the stream produced is written in the same turn. The h2-over-TLS
//! benchmark measures the difference (bench/RESULTS.md).
//!
//! A panic in one stream is caught here and resets only that stream, as it
//! would with a task per stream; the connection and its other streams go on.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::task::AtomicWaker;

type StreamFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What hyper spawns onto; one per connection.
#[derive(Clone)]
pub struct StreamExecutor(Arc<Spawned>);

struct Spawned {
    queue: Mutex<Vec<StreamFuture>>,
    /// The connection task, woken when hyper spawns outside its poll (rare).
    waker: AtomicWaker,
}

impl<F> hyper::rt::Executor<F> for StreamExecutor
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, fut: F) {
        self.0
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::pin(fut));
        self.0.waker.wake();
    }
}

/// The streams of one connection, polled by the connection's task.
pub struct Streams {
    spawned: Arc<Spawned>,
    running: FuturesUnordered<futures_util::future::CatchUnwind<AssertUnwindSafe<StreamFuture>>>,
}

impl Streams {
    pub fn new() -> (Self, StreamExecutor) {
        let spawned = Arc::new(Spawned {
            queue: Mutex::new(Vec::new()),
            waker: AtomicWaker::new(),
        });
        let streams = Self {
            spawned: spawned.clone(),
            running: FuturesUnordered::new(),
        };
        (streams, StreamExecutor(spawned))
    }

    /// Whether hyper spawned streams that have not been polled yet.
    pub fn has_new(&self) -> bool {
        !self
            .spawned
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// Whether no stream is left.
    pub fn is_empty(&self) -> bool {
        self.running.is_empty() && !self.has_new()
    }

    /// Polls every stream that is ready to make progress; `cx`'s task is
    /// woken when another one is (or hyper spawns one).
    pub fn poll_progress(&mut self, cx: &mut Context<'_>) {
        self.spawned.waker.register(cx.waker());
        let new =
            std::mem::take(&mut *self.spawned.queue.lock().unwrap_or_else(|p| p.into_inner()));
        for fut in new {
            self.running.push(AssertUnwindSafe(fut).catch_unwind());
        }
        // FuturesUnordered yields (waking the task) after a bounded number
        // of polls, so many busy streams cannot starve the connection.
        while let Poll::Ready(Some(done)) = self.running.poll_next_unpin(cx) {
            if let Err(panic) = done {
                let what = panic
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("non-string panic payload");
                tracing::error!(panic = what, "HTTP/2 stream panicked; stream reset");
            }
        }
    }

    /// Runs the remaining streams to completion (after the connection ended,
    /// they see it closed and finish promptly).
    pub async fn finish(&mut self) {
        std::future::poll_fn(|cx| {
            self.poll_progress(cx);
            if self.is_empty() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Executor;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn streams_run_to_completion_and_a_panic_stays_in_its_stream() {
        let (mut streams, executor) = Streams::new();
        let done = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        executor.execute(async { panic!("one bad stream") });
        let d = done.clone();
        executor.execute(async move {
            // Waits for a wake-up from outside, as a stream waits for its upstream.
            let _ = rx.await;
            d.fetch_add(1, Ordering::SeqCst);
        });
        let d = done.clone();
        executor.execute(async move {
            d.fetch_add(1, Ordering::SeqCst);
        });
        assert!(streams.has_new());
        std::future::poll_fn(|cx| {
            streams.poll_progress(cx);
            Poll::Ready(())
        })
        .await;
        assert_eq!(done.load(Ordering::SeqCst), 1, "the ready stream ran");
        assert!(!streams.is_empty(), "the waiting stream is still there");
        tx.send(()).expect("receiver alive");
        streams.finish().await;
        assert_eq!(done.load(Ordering::SeqCst), 2);
        assert!(streams.is_empty());
    }
}
