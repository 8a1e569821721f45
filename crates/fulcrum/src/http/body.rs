//! The response body fulcrum sends downstream: either the upstream's body,
//! streamed frame by frame (never buffered whole; hyper applies backpressure),
//! or a small local reply.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;

use super::activity::StreamGuard;
use crate::cluster::ActiveRequest;

#[derive(Debug)]
pub struct ProxyBody {
    kind: Kind,
    /// Keeps the request counted on its downstream connection (for the idle
    /// timeout) until the body ends or is dropped.
    stream: Option<StreamGuard>,
}

#[derive(Debug)]
enum Kind {
    /// The upstream's body; `active` keeps the request counted as in flight
    /// (for least-request and metrics) until the last frame has passed.
    Upstream {
        body: Incoming,
        active: Option<ActiveRequest>,
    },
    Local(Full<Bytes>),
}

impl ProxyBody {
    pub fn local(text: impl Into<Bytes>) -> Self {
        Self {
            kind: Kind::Local(Full::new(text.into())),
            stream: None,
        }
    }

    pub fn upstream(body: Incoming, active: ActiveRequest) -> Self {
        Self {
            kind: Kind::Upstream {
                body,
                active: Some(active),
            },
            stream: None,
        }
    }

    pub fn track(&mut self, stream: StreamGuard) {
        self.stream = Some(stream);
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = match &mut this.kind {
            Kind::Upstream { body, .. } => Pin::new(body).poll_frame(cx),
            Kind::Local(full) => Pin::new(full)
                .poll_frame(cx)
                .map_err(|never| match never {}),
        };
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            // The response is over: release the accounting now, not when hyper drops the body.
            if let Kind::Upstream { active, .. } = &mut this.kind {
                active.take();
            }
            this.stream.take();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Upstream { body, .. } => body.is_end_stream(),
            Kind::Local(full) => full.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Upstream { body, .. } => body.size_hint(),
            Kind::Local(full) => full.size_hint(),
        }
    }
}
