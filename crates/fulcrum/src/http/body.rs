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
use super::upstream::h1::H1Body;
use crate::cluster::ActiveRequest;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug)]
pub struct ProxyBody {
    kind: Kind,
    /// Keeps the request counted on its downstream connection (for the idle
    /// timeout) until the body ends or is dropped.
    stream: Option<StreamGuard>,
}

#[derive(Debug)]
pub enum UpstreamBody {
    /// From fulcrum's HTTP/1.1 client.
    Http1(H1Body),
    /// From hyper's HTTP/2 client.
    Http2(Incoming),
}

#[derive(Debug)]
enum Kind {
    /// The upstream's body; `active` keeps the request counted as in flight
    /// (for least-request and metrics) until the last frame has passed.
    Upstream {
        body: UpstreamBody,
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

    pub fn upstream(body: UpstreamBody, active: ActiveRequest) -> Self {
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
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = match &mut this.kind {
            Kind::Upstream {
                body: UpstreamBody::Http1(body),
                ..
            } => Pin::new(body).poll_frame(cx).map_err(Into::into),
            Kind::Upstream {
                body: UpstreamBody::Http2(body),
                ..
            } => Pin::new(body).poll_frame(cx).map_err(Into::into),
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
            Kind::Upstream {
                body: UpstreamBody::Http1(body),
                ..
            } => body.is_end_stream(),
            Kind::Upstream {
                body: UpstreamBody::Http2(body),
                ..
            } => body.is_end_stream(),
            Kind::Local(full) => full.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Upstream {
                body: UpstreamBody::Http1(body),
                ..
            } => body.size_hint(),
            Kind::Upstream {
                body: UpstreamBody::Http2(body),
                ..
            } => body.size_hint(),
            Kind::Local(full) => full.size_hint(),
        }
    }
}
