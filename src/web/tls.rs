//! The rustls server configuration built from `tls_server_config`.
//!
//! Built whole from the files each time they change (see
//! [`super::Edge`]): certificate chain, key, client verifier and protocol
//! versions together, so a rotation that replaces the certificate, the key
//! and the client CA is picked up as one, and a half-written pair (new
//! certificate, old key) fails the build and keeps the previous config.
//!
//! Key material never reaches an error message: PEM parse errors of a key
//! are replaced by a fixed text.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};

use super::web_config::{ClientAuth, Pem, Problem, TlsSettings, TlsVersion};

/// The only application protocol served: the server speaks HTTP/1.1, and
/// saying so in ALPN lets clients that offer h2 fall back cleanly.
const ALPN_HTTP11: &[u8] = b"http/1.1";

/// Builds the server config, reading every file it names. All problems
/// (unreadable files, bad PEM, a key that does not match) are returned
/// together, each under the key that named the file.
pub fn server_config(s: &TlsSettings) -> Result<Arc<ServerConfig>, Vec<Problem>> {
    let mut problems = Vec::new();
    let chain = certs(&s.cert, "tls_server_config.cert_file", &mut problems);
    let key = key(&s.key, &mut problems);
    let ca = s
        .client_ca
        .as_ref()
        .map(|ca| certs(ca, "tls_server_config.client_ca_file", &mut problems));
    let provider = Arc::new(aws_lc_rs::default_provider());

    let verifier = match ca {
        // configured, but unreadable: already a problem
        Some(None) => None,
        ca => match client_verifier(s.client_auth, ca.flatten().as_deref(), &provider) {
            Ok(v) => Some(v),
            Err(msg) => {
                problems.push(problem("tls_server_config.client_ca_file", msg));
                None
            }
        },
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    let (Some(chain), Some(key), Some(verifier)) = (chain, key, verifier) else {
        return Err(vec![problem(
            "tls_server_config",
            "incomplete TLS settings",
        )]);
    };

    let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
        (TlsVersion::Tls12, &rustls::version::TLS12),
        (TlsVersion::Tls13, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| (s.min_version..=s.max_version).contains(v))
    .map(|(_, p)| p)
    .collect();

    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| vec![problem("tls_server_config.min_version", e.to_string())])?;
    let mut config = builder
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| {
            vec![problem(
                "tls_server_config.key_file",
                format!("the key does not go with the certificate, or is unusable: {e}"),
            )]
        })?;
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

fn problem(key: &str, message: impl Into<String>) -> Problem {
    Problem {
        key: key.to_owned(),
        message: message.into(),
    }
}

fn read(pem: &Pem, key: &str, problems: &mut Vec<Problem>) -> Option<Vec<u8>> {
    match pem {
        Pem::Inline(s) => Some(s.expose().as_bytes().to_vec()),
        Pem::File(path) => match std::fs::read(path) {
            Ok(b) => Some(b),
            Err(err) => {
                problems.push(problem(
                    key,
                    format!("cannot read {}: {err}", path.display()),
                ));
                None
            }
        },
    }
}

fn shown(pem: &Pem) -> String {
    match pem {
        Pem::File(p) => p.display().to_string(),
        Pem::Inline(_) => "the inline PEM".to_owned(),
    }
}

fn certs(
    pem: &Pem,
    key: &str,
    problems: &mut Vec<Problem>,
) -> Option<Vec<CertificateDer<'static>>> {
    let key = if matches!(pem, Pem::Inline(_)) {
        key.trim_end_matches("_file")
    } else {
        key
    };
    let bytes = read(pem, key, problems)?;
    match CertificateDer::pem_slice_iter(&bytes).collect::<Result<Vec<_>, _>>() {
        Ok(v) if !v.is_empty() => Some(v),
        Ok(_) => {
            problems.push(problem(
                key,
                format!("no PEM certificate found in {}", shown(pem)),
            ));
            None
        }
        Err(err) => {
            problems.push(problem(
                key,
                format!("bad PEM certificate in {}: {err}", shown(pem)),
            ));
            None
        }
    }
}

fn key(pem: &Pem, problems: &mut Vec<Problem>) -> Option<PrivateKeyDer<'static>> {
    let name = match pem {
        Pem::File(_) => "tls_server_config.key_file",
        Pem::Inline(_) => "tls_server_config.key",
    };
    let bytes = read(pem, name, problems)?;
    // The parse error could carry a line of the file: never show it.
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(k) => Some(k),
        Err(_) => {
            problems.push(problem(
                name,
                format!(
                    "no usable private key (PEM PKCS#8, PKCS#1 or SEC1) in {}",
                    shown(pem)
                ),
            ));
            None
        }
    }
}

fn client_verifier(
    auth: ClientAuth,
    ca: Option<&[CertificateDer<'static>]>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let mut roots = RootCertStore::empty();
    if let Some(ca) = ca {
        for c in ca {
            roots
                .add(c.clone())
                .map_err(|e| format!("not a usable CA certificate: {e}"))?;
        }
    }
    let hints = roots.subjects();
    match auth {
        ClientAuth::NoClientCert => Ok(WebPkiClientVerifier::no_client_auth()),
        ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => {
            Ok(Arc::new(AnyClientCert {
                mandatory: auth == ClientAuth::RequireAnyClientCert,
                hints,
                provider: provider.clone(),
            }))
        }
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
            let b = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let b = if auth == ClientAuth::VerifyClientCertIfGiven {
                b.allow_unauthenticated()
            } else {
                b
            };
            b.build().map_err(|e| format!("cannot verify clients: {e}"))
        }
    }
}

/// `RequestClientCert` / `RequireAnyClientCert`: any certificate is taken
/// without checking who issued it (the toolkit's, i.e. Go's, meaning).
/// The handshake signature is still verified, so the client does hold the
/// certificate's key.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    hints: Vec<DistinguishedName>,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
