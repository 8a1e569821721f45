//! The response body fulcrum sends downstream: either the upstream's body,
//! streamed frame by frame (never buffered whole; hyper applies backpressure),
//! or a small local reply.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;

use http::HeaderName;

use super::activity::StreamGuard;
use super::headers::remove_forbidden_trailers;
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
        let polled = polled.map(|frame| frame.map(|f| f.map(filter_trailers)));
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

/// A trailer section loses the fields that must not travel in one
/// (RFC 9110 6.5.1, `headers::remove_forbidden_trailers`).
fn filter_trailers(mut frame: Frame<Bytes>) -> Frame<Bytes> {
    if let Some(trailers) = frame.trailers_mut() {
        remove_forbidden_trailers(trailers, None);
    }
    frame
}

/// A client's request body as either upstream client reads it: the frames
/// as they come, and an error when none arrives for `timeout` (the
/// listener's `request_body_timeout`; a trickling client is cut off, a slow
/// but moving one is not). The timer is armed only while the body is
/// waiting, so a body that arrives at once never touches it.
#[derive(Debug)]
pub struct ClientBody {
    inner: Incoming,
    timeout: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    armed: bool,
}

/// Why a client's request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ClientBodyError {
    #[error("no request body byte for {} ms (request_body_timeout)", .0.as_millis())]
    Timeout(Duration),
    #[error("client body: {0}")]
    Client(#[from] hyper::Error),
}

impl ClientBody {
    pub fn new(inner: Incoming, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            timer: None,
            armed: false,
        }
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.armed = false;
            return Poll::Ready(frame.map(|f| f.map_err(ClientBodyError::Client)));
        }
        if !this.armed {
            let deadline = crate::clock::deadline(this.timeout);
            match &mut this.timer {
                Some(timer) => timer.as_mut().reset(deadline),
                None => this.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            this.armed = true;
        }
        let Some(timer) = this.timer.as_mut() else {
            return Poll::Pending;
        };
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(ClientBodyError::Timeout(this.timeout)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A client's request body on its way to an HTTP/2 endpoint: the frames as
/// they come, with the trailer section filtered as in both other directions.
#[derive(Debug)]
pub struct RequestBody {
    /// None: no body (a retry of a bodiless request).
    inner: Option<ClientBody>,
    /// The listener's client certificate header, never taken from a client.
    client_cert_header: HeaderName,
}

impl RequestBody {
    pub fn new(inner: ClientBody, client_cert_header: HeaderName) -> Self {
        Self {
            inner: Some(inner),
            client_cert_header,
        }
    }

    /// No body at all.
    pub fn empty(client_cert_header: HeaderName) -> Self {
        Self {
            inner: None,
            client_cert_header,
        }
    }

    pub fn client_cert_header(&self) -> &HeaderName {
        &self.client_cert_header
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = std::task::ready!(Pin::new(inner).poll_frame(cx));
        Poll::Ready(polled.map(|frame| {
            frame.map(|mut f| {
                if let Some(trailers) = f.trailers_mut() {
                    remove_forbidden_trailers(trailers, Some(&this.client_cert_header));
                }
                f
            })
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}
