//! TLS test helpers: a throwaway CA and leaf certificates generated at test
//! time with rcgen (no private key is ever committed), and a real rustls
//! client that speaks HTTP/1.1 or HTTP/2 to fulcrum through it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A CA that signs leaf certificates into files under `dir`.
pub struct TestPki {
    pub dir: PathBuf,
    pub ca_pem: String,
    ca_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

/// Key algorithm of a leaf certificate.
#[derive(Clone, Copy, Debug)]
pub enum KeyKind {
    EcdsaP256,
    Rsa2048,
}

impl TestPki {
    pub fn new(tag: &str) -> TestPki {
        let dir = std::env::temp_dir().join(format!("fulcrum-tls-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("fulcrum test CA {tag}"));
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let ca_pem = cert.pem();
        std::fs::write(dir.join("ca.pem"), &ca_pem).unwrap();
        TestPki {
            dir,
            ca_pem,
            ca_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Writes `<file>.pem` and `<file>.key` for a leaf with these DNS names;
    /// returns the two paths.
    pub fn leaf(&self, file: &str, names: &[&str], kind: KeyKind) -> (PathBuf, PathBuf) {
        self.issue(file, names, kind, None)
    }

    /// Like [`leaf`](Self::leaf) (ECDSA) but valid until 1 January `year`.
    pub fn leaf_expiring(&self, file: &str, names: &[&str], year: i32) -> (PathBuf, PathBuf) {
        self.issue(file, names, KeyKind::EcdsaP256, Some(year))
    }

    fn issue(
        &self,
        file: &str,
        names: &[&str],
        kind: KeyKind,
        expires: Option<i32>,
    ) -> (PathBuf, PathBuf) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or(file));
        if let Some(year) = expires {
            params.not_after = rcgen::date_time_ymd(year, 1, 1);
        }
        let key = match kind {
            KeyKind::EcdsaP256 => KeyPair::generate().unwrap(),
            KeyKind::Rsa2048 => KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap(),
        };
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let cert_path = self.dir.join(format!("{file}.pem"));
        let key_path = self.dir.join(format!("{file}.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }

    /// A client trusting only this CA, offering `alpn`.
    pub fn client(&self, alpn: &[&str]) -> rustls::ClientConfig {
        self.client_with_versions(alpn, rustls::DEFAULT_VERSIONS)
    }

    /// A client trusting this CA that presents the certificate in these files.
    pub fn client_with_cert(&self, alpn: &[&str], cert: &Path, key: &Path) -> rustls::ClientConfig {
        use rustls::pki_types::PrivateKeyDer;
        use rustls::pki_types::pem::PemObject;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        config
    }

    pub fn client_with_versions(
        &self,
        alpn: &[&str],
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        config
    }
}

impl TestPki {
    /// A TLS server config for a test origin: this leaf, these ALPN
    /// protocols, and (`client_ca`) client certificates required and
    /// verified against this CA.
    pub fn origin(
        &self,
        (cert, key): &(PathBuf, PathBuf),
        alpn: &[&str],
        client_ca: bool,
    ) -> Arc<rustls::ServerConfig> {
        use rustls::pki_types::PrivateKeyDer;
        use rustls::pki_types::pem::PemObject;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if client_ca {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.ca_der.clone()).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder.with_single_cert(chain, key).unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Arc::new(config)
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What one request over TLS saw.
#[derive(Debug)]
pub struct TlsReply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
    /// The ALPN protocol the server chose.
    pub alpn: Option<String>,
    /// `TLSv1_2` / `TLSv1_3`.
    pub version: String,
    /// The subject CN of the certificate the server presented.
    pub served_cn: String,
    /// Its DNS subjectAltNames.
    pub served_names: Vec<String>,
    pub resumed: bool,
}

/// Connects to `addr` with `server_name` as SNI, then sends `GET path` over
/// whatever ALPN chose (h2 or HTTP/1.1).
pub async fn tls_get(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
    server_name: &str,
    path: &str,
) -> Result<TlsReply, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from(server_name.to_string()).map_err(|e| e.to_string())?;
    let tls = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (_, conn) = tls.get_ref();
    let alpn = conn
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let version = format!("{:?}", conn.protocol_version().unwrap());
    let resumed = conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    let leaf = conn.peer_certificates().and_then(|c| c.first());
    let served_cn = leaf.map(|der| common_name(der)).unwrap_or_default();
    let served_names = leaf.map(|der| dns_names(der)).unwrap_or_default();
    let uri = format!("https://{server_name}{path}");
    let req = Request::get(&uri)
        .header("host", server_name)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let io = TokioIo::new(tls);
    let resp = if alpn.as_deref() == Some("h2") {
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        send.send_request(req).await.map_err(|e| e.to_string())?
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        send.send_request(req).await.map_err(|e| e.to_string())?
    };
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(TlsReply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        alpn,
        version,
        served_cn,
        served_names,
        resumed,
    })
}

fn dns_names(der: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
            _ => None,
        })
        .collect()
}

/// An HTTP/1.1 connection over TLS that stays open for more requests.
pub struct TlsConnection {
    send: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    pub served_names: Vec<String>,
}

impl TlsConnection {
    pub async fn open(
        addr: std::net::SocketAddr,
        config: Arc<rustls::ClientConfig>,
        server_name: &str,
    ) -> TlsConnection {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from(server_name.to_string()).unwrap();
        let tls = TlsConnector::from(config).connect(name, tcp).await.unwrap();
        let served_names = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|der| dns_names(der))
            .unwrap_or_default();
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        TlsConnection { send, served_names }
    }

    /// GET `path` on this connection; the status.
    pub async fn get(&mut self, path: &str) -> u16 {
        self.get_with(path, &[]).await
    }

    /// GET `path` with extra request headers; the status.
    pub async fn get_with(&mut self, path: &str, headers: &[(&str, &str)]) -> u16 {
        let mut req = Request::get(path).header("host", "example.test");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req.body(Empty::<Bytes>::new()).unwrap();
        let resp = self.send.send_request(req).await.unwrap();
        let status = resp.status().as_u16();
        resp.into_body().collect().await.unwrap();
        status
    }
}

fn common_name(der: &CertificateDer<'_>) -> String {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return String::new();
    };
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// A `tls` table for a listener serving these (cert, key) pairs.
pub fn tls_table(certificates: &[(PathBuf, PathBuf)], extra: &str) -> String {
    let list: Vec<String> = certificates
        .iter()
        .map(|(c, k)| {
            format!(
                "{{ cert = \"{}\", key = \"{}\" }}",
                c.display(),
                k.display()
            )
        })
        .collect();
    format!(
        "[listeners.tls]\ncertificates = [{}]\n{extra}\n",
        list.join(", ")
    )
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}
